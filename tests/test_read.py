"""Readers: encodings, delimiters, row numbers, cell conversion."""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path

import pytest

from sync.read import cell_text, detect_delimiter, open_tables


def rows(path: Path) -> list[tuple[int, list[str]]]:
    (table,) = open_tables(path)
    return list(table.rows())


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF8 + "Name,Phone\nZoë,1\n".encode(), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "Name,Phone\nZoë,1\n".encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + "Name,Phone\nZoë,1\n".encode("utf-16-be"), "utf-16"),
        ("Name,Phone\nZoë,1\n".encode(), "utf-8"),
        ("Name,Phone\nZoë,1\n".encode("cp1252"), "cp1252"),
    ],
)
def test_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(data)
    (table,) = open_tables(path)
    assert table.encoding == encoding
    assert table.header == ("Name", "Phone")
    assert list(table.rows()) == [(2, ["Zoë", "1"])]


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_delimiters(delim: str) -> None:
    sample = delim.join(["Name", "Phone", "Note"]) + "\n" + delim.join(["A, B", "1", "x;y"]) + "\n"
    if delim == ",":
        sample = sample.replace("A, B", '"A, B"')
    assert detect_delimiter(sample) == delim


def test_row_numbers_match_excel(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('\nName,Phone\n\nA,1\n"multi\nline",2\n , \nB,3\n')
    (table,) = open_tables(path)
    assert table.header_row == 2
    assert [n for n, _ in table.rows()] == [4, 5, 7]


def test_cell_text() -> None:
    assert cell_text(923001112233.0) == "923001112233"
    assert cell_text(9.23001112233e11) == "923001112233"
    assert cell_text(3001112244) == "3001112244"
    assert cell_text(-5.0) == "-5"
    assert cell_text(1.5) == "1.5"
    assert cell_text(dt.date(2023, 3, 1)) == "2023-03-01"
    assert cell_text(None) == ""
    assert cell_text(True) == "TRUE"
    assert cell_text(float("nan")) == "NaN"
