"""Readers: encodings, delimiters, row numbers, cell conversion."""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sync import read
from sync.errors import InputError
from sync.read import (
    Table,
    cell_text,
    detect_delimiter,
    open_tables,
    pick_rows,
    read_columns,
    row_batches,
)


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


ONE_LINE_RECORDS = [
    ("a,b\r\n1,2\r\n3,4\r\n", "utf-8"),
    ("sep=;\na;b\n1;2\n\n3;4\n", "utf-8"),
    ("a,b\n\n1,2\n,\n3,4\n", "utf-8"),  # blank rows keep their numbers
    ("a,b,c\n1\n2,3\n", "utf-8"),  # short rows padded
    ("a,b\n1,2", "utf-8"),  # no final newline
    ("\n\na,b\n1,2\n3,4\n", "utf-8"),  # header after blank lines
    ('a,b\n"1,2",3\n"x ""y""",4\n', "utf-8"),
    ("a,b\r1,2\r3,4\r", "utf-8"),  # old Mac line ends
    ("name,phone\nJosé,1\nZoë,2\n", "cp1252"),
    ("name,phone\nJosé,1\nZoë,2\n", "utf-16"),
    ("\ufeffname,phone\n1,2\n3,4\n", "utf-8"),
]
SPANNING_RECORDS = [
    'a,b\n"x\ny",2\n3,4\n5,6\n',  # a quoted field over two lines
    'a,b\n1,2\n"x\r\ny",3\n4,5\n',
]


def _rows_by_full_pass(table: Table) -> list[tuple[int, list[str]]]:
    return [
        (n, cells)
        for numbers, rows in row_batches(table)
        for n, cells in zip(numbers, rows, strict=True)
    ]


@pytest.mark.parametrize("keep_frame", [True, False])
@pytest.mark.parametrize(("text", "encoding"), ONE_LINE_RECORDS)
def test_picked_rows_read_by_line_equal_a_full_pass(
    tmp_path: Path, text: str, encoding: str, keep_frame: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Picked from the polars frame of a plain file (or, beyond its size limit, by line), then by
    line: the rows a full pass gives."""
    if not keep_frame:
        monkeypatch.setattr(read, "_KEEP_FRAME", 0)
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode(encoding))
    (table,) = open_tables(path)
    numbers, _ = read_columns(table, [0])  # the pass that learns every record is one line
    everything = _rows_by_full_pass(table)
    monkeypatch.setattr(read, "_picked", None)  # the line-wise path, not a full pass, answers
    for wanted in (set(numbers), set(numbers[1::2]), {numbers[-1]}):
        expected = [(n, cells) for n, cells in everything if n in wanted]
        assert list(pick_rows(table, wanted)) == expected


@pytest.mark.parametrize("text", SPANNING_RECORDS)
def test_picked_rows_when_a_record_spans_lines(tmp_path: Path, text: str) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8", newline="")
    (table,) = open_tables(path)
    numbers, _ = read_columns(table, [0])
    everything = _rows_by_full_pass(table)
    wanted = set(numbers[1:])
    assert list(pick_rows(table, wanted)) == [(n, c) for n, c in everything if n in wanted]
    assert any("\n" in c for _, cells in everything for c in cells)


def _by_batches(table: Table, cols: list[int]) -> tuple[list[int], list[list[str]]]:
    return read_columns(dataclasses.replace(table, column_reader=None), cols)


cell_text_st = st.text(alphabet="ab1 \t\x1c\u00a0é;,|", max_size=4)
# no comma: a row of three stays three wide
plain_cell_st = st.text(alphabet="ab1 \t\x1c\u00a0é;|", max_size=4)
row_st = st.one_of(
    st.lists(plain_cell_st, min_size=3, max_size=3),
    st.lists(cell_text_st, min_size=1, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(row_st, min_size=1, max_size=12),
    end=st.sampled_from(["\n", "\r\n"]),
    final=st.booleans(),
)
def test_columns_by_polars_equal_the_csv_module(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]], end: str, final: bool
) -> None:
    """Whatever the text, polars' answer (when it gives one) is the csv module's: the same row
    numbers, blank rows left out, the same cells."""
    header = "Name,Phone,Notes"
    text = end.join([header, *(",".join(r) for r in rows)]) + (end if final else "")
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        (table,) = open_tables(path)
    except InputError:  # too many control characters: refused as binary, before any reading
        assume(False)
    assert table.column_reader is not None
    fast = table.column_reader([0, 2])
    if fast is not None:
        assert fast == _by_batches(table, [0, 2])


def test_a_plain_file_is_read_by_polars(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes("\ufeffName;Phone\r\nA;1\r\n;\r\n \t;\x1c\r\nB;2\r\n".encode())
    (table,) = open_tables(path)
    assert table.column_reader is not None
    got = table.column_reader([0, 1])
    assert got == ([2, 5], [["A", "B"], ["1", "2"]])  # the blank rows 3 and 4 are left out
    assert got == _by_batches(table, [0, 1])


@pytest.mark.parametrize(
    "text",
    [
        'Name,Phone\n"A, B",1\n',  # a quote: the csv module's business
        "Name,Phone\rA,1\r",  # CR alone ends a line for the csv module
        "Name,Phone\nA,1,extra\nB\n",  # ragged
        "Name,Phone\n\nA,1\n",  # an empty line
        "sep=,\nName,Phone\nA,1\n",
        "\nName,Phone\nA,1\n",  # the header not on the first line
    ],
)
def test_other_files_are_left_to_the_csv_module(tmp_path: Path, text: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode())
    (table,) = open_tables(path)
    assert table.column_reader is not None
    assert table.column_reader([0, 1]) is None
    assert read_columns(table, [0, 1]) == _by_batches(table, [0, 1])
