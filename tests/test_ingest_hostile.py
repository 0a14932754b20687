"""The hostile corpus (tests/fixtures/): each file gets a whole-file error or per-row reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sync.cli import cli
from sync.errors import InputError
from sync.mapping import load_mapping
from sync.normalize import IngestResult, ingest

FIXTURES = Path(__file__).parent / "fixtures"

# file → message fragment of the whole-file error (exit 2)
FILE_ERRORS = {
    "empty.csv": "is empty",
    "blank_lines.csv": "is empty",
    "header_only.csv": "header but no data rows",
    "binary.csv": "binary data",
    "zip_named.csv": "is a workbook (ZIP data)",
    "text_named.xlsx": "not a .xlsx workbook",
    "text_named.xls": "not a legacy .xls workbook",
    "corrupt.xlsx": "corrupt or unreadable workbook",
    "encrypted.xlsx": "password-protected",
    "unknown.pdf": "unknown extension '.pdf'",
    "no_extension": "unknown extension",
    "no_phone_column.csv": "no phone column; columns found: 'Name', 'Email', 'Tel No'",
    "does_not_exist.csv": "does not exist",
}

# file → {row: E.164 or reason fragment}; every row of the file is listed
ROWS: dict[str, dict[int, str]] = {
    "bom_utf8.csv": {2: "+923001234567"},
    "utf16le_tab.txt": {2: "+923001234567"},
    "utf16be.csv": {2: "+923001234567"},
    "cp1252_semicolon.csv": {2: "+923001234567"},
    "pipe.csv": {2: "+923001234567"},
    "sep_line.csv": {2: "+923001234567"},
    "blank_rows_inside.csv": {3: "+923001234567", 6: "+923001234568"},
    "mixed_delimiters.csv": {2: "+923001234567", 3: "uses ',' as delimiter"},
    "unbalanced_quote.csv": {2: "+923001234567", 3: "quote opened in this row is never closed"},
    "ragged.csv": {2: "+923001234567", 3: "missing phone"},
    "formulas.csv": {2: "+923001234567", 3: "a formula", 4: "+923001234569"},
    "scientific.csv": {2: "scientific notation", 3: "+923001112233"},
    "negative.csv": {2: "negative number"},
    "nan.csv": {2: "not a phone number", 3: "not a phone number", 4: "not a phone number"},
    "dates.csv": {2: "looks like a date", 3: "looks like a date", 4: "looks like a date"},
    "dates.xlsx": {
        2: "looks like a date",
        3: "looks like a date",
        4: "negative number",
        5: "missing phone",
        6: "not a phone number",
    },
    "numeric_phones.xlsx": {
        2: "+923001112233",
        3: "+923001112244",
        4: "+923001112255",
        5: "+923001112266",
        6: "+923001112277",
    },
    "emoji_names.csv": {2: "+923001234567", 3: "+923001234568", 4: "+923001234569"},
    "rtl.csv": {2: "+923001234567", 3: "+923001234568"},
    "html_names.csv": {
        2: "+923001234567",
        3: "+923001234568",
        4: "+923001234569",
        5: "+923001234570",
    },
    "formula_prefix_names.csv": {2: "+923001234567", 3: "+923001234568", 4: "+923001234569"},
    "long_name.csv": {2: "name longer than 255 characters"},
    "control_chars.csv": {2: "+923001234567"},
    "merged.xlsx": {2: "+923001234567", 3: "+923001234568"},
    "hidden_sheet.xlsx": {2: "+923001234567"},
    "two_sheets.xlsx": {3: "+923001234567", 4: "+923001234568"},
    "macro.xlsm": {2: "+923001112233"},
    "legacy.xls": {2: "+923001234567", 3: "+923001234568"},
    "contacts.ods": {2: "+923001234567", 3: "+923001234568"},
}


def run(path: Path, preset: str | None = None) -> IngestResult:
    return ingest([path], load_mapping(preset, region="PK"))


def outcome(result: IngestResult) -> dict[int, str]:
    got = {c.origin.row: c.phone for c in result.contacts}
    got.update({i.origin.row: i.reason for i in result.issues})
    return got


def accounted(result: IngestResult) -> None:
    assert result.rows_read == len(result.contacts) + len(result.issues)


def test_corpus_is_large_enough() -> None:
    assert len(FILE_ERRORS) + len(ROWS) >= 30


@pytest.mark.parametrize(("name", "fragment"), sorted(FILE_ERRORS.items()))
def test_whole_file_errors(name: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        run(FIXTURES / name)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2
    assert info.value.hint


@pytest.mark.parametrize(("name", "expected"), sorted(ROWS.items()))
def test_rows(name: str, expected: dict[int, str]) -> None:
    result = run(FIXTURES / name)
    accounted(result)
    got = outcome(result)
    assert sorted(got) == sorted(expected)
    for row, want in expected.items():
        assert want in got[row], (row, got[row])
    for issue in result.invalid:
        assert issue.columns, "invalid rows keep their original cells for rejected.csv"


@pytest.mark.parametrize("name", sorted(FILE_ERRORS))
def test_cli_exit_2_without_traceback(name: str) -> None:
    res = CliRunner().invoke(cli, ["check", str(FIXTURES / name), "--region", "PK"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "error:" in res.output


def test_names_kept_or_replaced_as_the_server_measures() -> None:
    by_row = {c.origin.row: c for c in run(FIXTURES / "emoji_names.csv").contacts}
    assert by_row[2].name == "😀"  # 4 bytes in UTF-8: accepted
    assert by_row[4].name == "+923001234569"  # "é" is 2 bytes: the phone number stands in
    assert "under 4 bytes" in by_row[4].notes[0]
    html = {c.origin.row: c.name for c in run(FIXTURES / "html_names.csv").contacts}
    assert html[4] == "&"  # "&amp;" once escaped: 5 bytes
    assert html[5] == '"'  # "&quot;"
    assert run(FIXTURES / "control_chars.csv").contacts[0].name == "Ali Khan"


def test_numeric_cells_are_exact_digits() -> None:
    raws = [c.raw_phone for c in run(FIXTURES / "numeric_phones.xlsx").contacts]
    assert raws[:3] == ["923001112233", "923001112244", "3001112255"]
    assert not any("E+" in r or r.endswith(".0") for r in raws)


def test_sheets_hidden_first_and_all() -> None:
    hidden = run(FIXTURES / "hidden_sheet.xlsx")
    assert hidden.sources[0].sheet == "Current"
    from dataclasses import replace

    every = ingest([FIXTURES / "two_sheets.xlsx"], replace(load_mapping(region="PK"), sheet="*"))
    accounted(every)
    assert [(s.sheet, s.rows, s.skipped) for s in every.sources] == [
        ("Lahore", 2, None),
        ("Karachi", 2, None),
        ("Notes", 0, "no phone column"),
    ]
    assert len(every.duplicates) == 1
    assert every.duplicates[0].winner is not None
    assert every.duplicates[0].winner.sheet == "Lahore"
    named = ingest(
        [FIXTURES / "two_sheets.xlsx"], replace(load_mapping(region="PK"), sheet="Karachi")
    )
    assert [c.origin.row for c in named.contacts] == [2, 3]
    with pytest.raises(InputError, match="no sheet 'Nope'"):
        ingest([FIXTURES / "two_sheets.xlsx"], replace(load_mapping(region="PK"), sheet="Nope"))


def test_ten_megabyte_line(tmp_path: Path) -> None:
    big = tmp_path / "big_line.csv"
    big.write_text("Name,Phone\n" + "y" * 10_000_000 + ",03001234567\nAli Khan,03001234568\n")
    result = run(big)
    accounted(result)
    assert outcome(result)[3] == "+923001234568"
    assert "name longer than 255" in outcome(result)[2]
    header_line = tmp_path / "big_header.csv"
    header_line.write_text("z" * 10_000_000 + "\n1\n")
    with pytest.raises(InputError, match="no phone column") as info:
        run(header_line)
    assert len(str(info.value)) < 1000


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    locked = tmp_path / "locked.csv"
    locked.write_text("Name,Phone\nAli Khan,03001234567\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything
        pytest.skip("running as root")
    with pytest.raises(InputError, match="permission denied"):
        run(locked)


@pytest.mark.parametrize(
    ("name", "opener"), [("locked.csv", "_csv_table"), ("locked.xlsx", "_book_tables")]
)
def test_unreadable_file_as_any_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, opener: str
) -> None:
    """The same refusal where chmod cannot make a file unreadable (root, as in CI): the open
    fails with EACCES, as it does for any other user."""
    from sync import read

    locked = tmp_path / name
    locked.write_bytes(b"Name,Phone\n")

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr(read, opener, denied)
    with pytest.raises(
        InputError, match=r"locked\.\w+: cannot be read \(permission denied\)"
    ) as info:
        run(locked)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", ["exports", "contacts.csv"])
def test_a_directory_is_named_as_one(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(InputError, match="is a directory") as info:
        run(tmp_path / name)
    assert info.value.exit_code == 2 and "spreadsheet files in it" in str(info.value.hint)
