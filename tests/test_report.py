"""Report writers: formula neutralisation, XLSX shape, atomic owner-only files."""

from __future__ import annotations

import csv
import io
import json
import stat
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import openpyxl
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import files, report, xlsx
from sync.files import atomic_path, write_atomic
from sync.models import Origin, RowIssue
from sync.report import (
    COLUMNS,
    Record,
    safe_cell,
    safe_record,
    write_csv,
    write_json,
    write_rejected,
    write_summary_md,
    write_xlsx,
)
from sync.table import Table


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1", "'\r=1"),
        ("+923001112233", "+923001112233"),
        ("+44 20 7946 0958", "+44 20 7946 0958"),
        ("(0301) 234-5678", "(0301) 234-5678"),
        ("-5", "-5"),
        ("Tom & Jerry", "Tom & Jerry"),
        (None, ""),
    ],
)
def test_safe_cell(raw: str | None, safe: str) -> None:
    assert safe_cell(raw) == safe


# every character `safe_cell` or polars' regex treats specially, and whitespace either side of
# the line between Python's `\s` and Rust's (\x1c-\x1f are space to Python only)
_FORMULA_ALPHABET = list("=+-@\t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000 ().,0189٣a|'!é")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(_FORMULA_ALPHABET), max_size=8), max_size=30))
def test_polars_finds_every_cell_safe_cell_changes(cells: list[str]) -> None:
    """`_safe_columns` asks polars, in one regex, which cells may start a formula and settles
    only those with `safe_cell`: the result is `safe_cell` of every cell, whatever the text."""
    columns: list[Sequence[object]] = [cells, list(reversed(cells))]
    frame = pl.DataFrame({"a": cells, "b": columns[1]}, schema={"a": pl.String, "b": pl.String})
    out = report._safe_columns(columns, frame, [0, 1])
    assert [list(c) for c in out] == [[safe_cell(v) for v in c] for c in columns]


def record(
    action: str = "create",
    outcome: str = "done",
    name: str = "Ali Khan",
    phone: str = "+923001112233",
) -> Record:
    return Record(
        "a.csv", "", 2, "0300 1112233", phone, name, "Customers", action, outcome, "", None, 1
    )


def records() -> Iterator[Record]:
    yield record()
    yield record("invalid", "skipped", name="=cmd()", phone="")
    yield record("drift", "skipped")
    yield record("create", "failed")


_ACTIONS = ["create", "delete", "replace", "unchanged", "drift", "skip_optout", "keep", "invalid"]
_OUTCOMES = ["planned", "done", "failed", "not_attempted", "unverified", "skipped", "unchanged"]


@given(st.lists(st.tuples(st.sampled_from(_ACTIONS), st.sampled_from(_OUTCOMES)), max_size=40))
def test_a_batch_finds_each_sheets_rows_as_attention_says_record_by_record(
    pairs: list[tuple[str, str]],
) -> None:
    recs = [record(a, o) for a, o in pairs]
    expected: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        for title in report.attention(r):
            expected.setdefault(title, []).append(i)
    found = report.RecordBatch.of(recs).sheet_rows()
    assert found == expected
    assert list(found) == [t for t in report.ATTENTION if t in found], "in the sheets' order"


def test_csv_and_json_hold_every_record(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", records())
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 5
    assert rows[2][COLUMNS.index("name")] == "'=cmd()"
    assert rows[1][COLUMNS.index("phone")] == "+923001112233"
    write_json(tmp_path / "r.json", {"rows_read": 4}, records())
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["summary"] == {"rows_read": 4}
    assert [r["action"] for r in doc["records"]] == ["create", "invalid", "drift", "create"]


HOSTILE = [
    "",
    " ",
    "a,b",
    'say "hi"',
    "two\nlines",
    "cr\rhere",
    "crlf\r\nend",
    "tab\tinside",
    "Müller 李 🎉",
    "=HYPERLINK(1)",
    "+44 20 7946 0958",
    "-",
    "@",
    '"',
    "\\back\\slash",
    "\x07bell\x1f",
    "<b>Tom &amp; Jerry</b> > 1",
    "\ufffe\uffffnot XML\x00",
]


def hostile_records() -> Iterator[Record]:
    for i, text in enumerate(HOSTILE * 3):
        yield Record(
            text,
            text,
            i if i % 2 else None,
            text,
            text,
            text,
            text,
            "create",
            "done",
            text,
            None if i % 3 else 10**12 + i,
            i,
        )


# how polars' output reaches the files: through a pipe in 1 MiB chunks (the default), in chunks
# of a few bytes (every boundary: inside a record, right after a newline), or buffered in memory
# (systems without /dev/fd)
PIPE_MODES = [(True, files._CHUNK), (True, 5), (True, 1), (False, files._CHUNK)]


@pytest.fixture(params=PIPE_MODES, ids=["pipe", "pipe-5-byte-chunks", "pipe-1-byte", "buffered"])
def pipe_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    pipes, chunk = request.param
    monkeypatch.setattr(files, "PIPE_PATHS", pipes and files.PIPE_PATHS)
    monkeypatch.setattr(files, "_CHUNK", chunk)


@pytest.mark.usefixtures("pipe_mode")
def test_csv_is_what_csv_writer_writes_and_json_what_json_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "BATCH", 7)  # several batches, one of them short
    recs = list(hostile_records())
    write_csv(tmp_path / "r.csv", recs)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(COLUMNS)
    writer.writerows(safe_record(r) for r in recs)
    assert (tmp_path / "r.csv").read_bytes() == expected.getvalue().encode("utf-8")

    write_json(tmp_path / "r.json", {"rows_read": len(recs)}, recs)
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["records"] == [dict(zip(COLUMNS, r, strict=True)) for r in recs]


def test_a_batch_of_one_repeated_record_is_written_as_csv_writer_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every column of such a batch holds one value (polars repeats it): hostile text too."""
    monkeypatch.setattr(report, "BATCH", 7)
    for k, rec in enumerate(hostile_records()):
        recs = [rec] * 9
        out = tmp_path / f"r{k}.csv"
        write_csv(out, recs)
        expected = io.StringIO(newline="")
        writer = csv.writer(expected)
        writer.writerow(COLUMNS)
        writer.writerows(safe_record(r) for r in recs)
        assert out.read_bytes() == expected.getvalue().encode("utf-8"), rec
        write_json(tmp_path / f"r{k}.json", {}, recs)
        doc = json.loads((tmp_path / f"r{k}.json").read_text(encoding="utf-8"))
        assert doc["records"] == [dict(zip(COLUMNS, r, strict=True)) for r in recs]


@pytest.mark.parametrize(
    ("room", "in_kernel"), [(report._JsonSink.ROOM, True), (16, True), (16, False)]
)
def test_json_summary_comes_first_whatever_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int, in_kernel: bool
) -> None:
    """The summary is written into room kept before the records; one that outgrows the room
    (16 bytes here; a long refusal message in life) moves the records and loses none, with
    copy_file_range or without it."""
    monkeypatch.setattr(report._JsonSink, "ROOM", room)
    if not in_kernel:

        def unsupported(*args: object) -> int:
            raise OSError("copy_file_range: not supported here")

        monkeypatch.setattr(report.os, "copy_file_range", unsupported)
    monkeypatch.setattr(report, "BATCH", 3)
    recs = list(hostile_records())
    summary = {"rows_read": len(recs), "refused": "too many deletes " * 20, "name": "Müller"}
    write_json(tmp_path / "r.json", summary, recs)
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert text.startswith('{"summary": {')
    first, _ = json.JSONDecoder().raw_decode(text, text.index("{", 1))
    assert first == summary  # a reader of the head alone gets the whole summary
    doc = json.loads(text)
    assert doc["summary"] == summary
    assert doc["records"] == [dict(zip(COLUMNS, r, strict=True)) for r in recs]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.usefixtures("pipe_mode")
def test_no_records_still_makes_valid_files(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", [])
    assert (tmp_path / "r.csv").read_bytes() == ",".join(COLUMNS).encode() + b"\r\n"
    write_json(tmp_path / "r.json", {}, [])
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["records"] == []


def test_xlsx_summary_then_attention_sheets(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    write_xlsx(path, [("rows read", 4), ("verified", "True")], records())
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "Summary"
    assert {"Failed", "Invalid", "Drift"} <= set(wb.sheetnames)
    failed = wb["Failed"]
    assert failed.freeze_panes == "A2"
    assert failed.auto_filter.ref == "A1:L2"
    phone = failed.cell(2, COLUMNS.index("phone") + 1)
    assert phone.value == "+923001112233" and phone.data_type == "s"
    assert wb["Invalid"].cell(2, COLUMNS.index("name") + 1).value == "'=cmd()"


@pytest.mark.parametrize("zip64_at", [xlsx._ZIP64, 1])
@pytest.mark.parametrize("deflate", ["isal", "zlib"])
def test_xlsx_zip_reads_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip64_at: int, deflate: str
) -> None:
    """The zip written from parts deflated beforehand: every CRC checks out, the parts inflate
    to the same XML with ISA-L or zlib, with or without Zip64 fields (forced here at 1 byte)."""
    if deflate == "zlib":
        monkeypatch.setattr(xlsx, "_deflate", zlib)
    monkeypatch.setattr(xlsx, "_ZIP64", zip64_at)
    path = tmp_path / "r.xlsx"
    recs = [record("invalid", "skipped", name=f"n{i} <&>") for i in range(3000)]
    write_xlsx(path, [("rows read", 3000)], recs)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        parts = {info.filename: zf.read(info) for info in zf.infolist()}
        needed = {info.extract_version for info in zf.infolist()}
        assert needed == ({45} if zip64_at == 1 else {20})
    assert set(parts) >= {"[Content_Types].xml", "xl/workbook.xml", "xl/styles.xml"}
    assert parts["xl/styles.xml"] == xlsx._STYLES.encode()
    invalid = openpyxl.load_workbook(path)["Invalid"]
    assert invalid.max_row == 3001 and invalid.cell(3001, 6).value == "n2999 <&>"


def test_xlsx_sheet_past_excels_limit_points_to_the_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    path = tmp_path / "r.xlsx"
    write_xlsx(path, [], (record("invalid", "skipped", phone=f"+9230011122{i}") for i in range(9)))
    rows = list(openpyxl.load_workbook(path)["Invalid"].values)
    assert len(rows) == 4  # header, 2 records, the note
    assert rows[-1][0] == "7 more rows than Excel can hold: see report.csv"


def test_xlsx_text_is_escaped_and_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    odd = "<b>&amp;</b> \x01 \u200fعربي 😀"
    write_xlsx(path, [], [record("invalid", "skipped", name=odd)])
    cell = openpyxl.load_workbook(path)["Invalid"].cell(2, COLUMNS.index("name") + 1)
    assert cell.value == odd.replace("\x01", "")


def test_rejected_keeps_original_columns(tmp_path: Path) -> None:
    issues = [
        RowIssue(
            Origin("a.csv", None, 3),
            "invalid",
            "missing phone",
            "",
            "Ali",
            columns={"Name": "Ali", "Phone": ""},
        ),
        RowIssue(
            Origin("b.xlsx", "Sheet1", 7),
            "invalid",
            "not a number",
            "abc",
            "Bo",
            columns={"Full Name": "Bo", "Mobile": "abc"},
        ),
    ]
    write_rejected(tmp_path / "rejected.csv", issues)
    rows = list(
        csv.DictReader(io.StringIO((tmp_path / "rejected.csv").read_text(encoding="utf-8")))
    )
    assert rows[0]["Name"] == "Ali" and rows[0]["reason"] == "missing phone"
    assert rows[1]["Mobile"] == "abc" and rows[1]["sheet"] == "Sheet1" and rows[1]["row"] == "7"


def _rejected_as_csv_writer_writes_it(issues: list[RowIssue]) -> bytes:
    """rejected.csv as the row-by-row csv.writer version wrote it (the reference)."""
    head = ["file", "sheet", "row", "reason"]
    originals: dict[str, None] = {}
    for issue in issues:
        originals.update(dict.fromkeys(issue.columns))
    cols = [c for c in originals if c not in head]
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([*cols, *head])
    for i in issues:
        cells = [i.columns.get(c, "") for c in cols]
        meta = [i.origin.file, i.origin.sheet or "", i.origin.row, i.reason]
        writer.writerow([safe_cell(v) for v in (*cells, *meta)])
    return out.getvalue().encode("utf-8")


@pytest.mark.usefixtures("pipe_mode")
def test_rejected_is_what_csv_writer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile cells, two files with different columns (one named like a meta column), rows
    that lack a column, several batches: the bytes are csv.writer's, neutralised cell by cell."""
    monkeypatch.setattr(report, "BATCH", 7)
    issues = []
    for i, text in enumerate(HOSTILE * 2):
        if i % 3:
            origin, cells = Origin(text or "a.csv", None, i + 2), {"Name": text, "Phone": text}
        else:
            origin = Origin("b.xlsx", text or "Sheet1", i)
            cells = {"Mobile": text, "file": "hidden", "Notes, etc": text, "=Formula": text}
        if i % 5 == 0:
            cells.pop(next(iter(cells)))
        issues.append(
            RowIssue(origin, "invalid", text or "missing phone", text, text, columns=cells)
        )
    write_rejected(tmp_path / "rejected.csv", issues)
    assert (tmp_path / "rejected.csv").read_bytes() == _rejected_as_csv_writer_writes_it(issues)
    write_rejected(tmp_path / "none.csv", [])
    assert (tmp_path / "none.csv").read_bytes() == _rejected_as_csv_writer_writes_it([])
    write_rejected(tmp_path / "table.csv", _issue_table(issues))  # as a snapshot holds them
    assert (tmp_path / "table.csv").read_bytes() == _rejected_as_csv_writer_writes_it(issues)


@pytest.mark.parametrize("names", [["Name"], ["Name", "Phone", "E-mail, work"]])
def test_rejected_of_one_layout_is_what_csv_writer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> None:
    """Rows that all have every column (one file's rows: the one-pass pick), hostile cells."""
    monkeypatch.setattr(report, "BATCH", 4)
    issues = [
        RowIssue(
            Origin("a.csv", None, i + 2),
            "invalid",
            "bad",
            text,
            text,
            columns={n: f"{text}{k}" for k, n in enumerate(names)},
        )
        for i, text in enumerate(HOSTILE)
    ]
    write_rejected(tmp_path / "rejected.csv", issues)
    assert (tmp_path / "rejected.csv").read_bytes() == _rejected_as_csv_writer_writes_it(issues)


def _issue_table(issues: list[RowIssue]) -> Table[RowIssue]:
    """The issues column-wise, as an ingest snapshot holds them."""
    cols = {f: [getattr(i, f) for i in issues] for f in RowIssue.__slots__}
    parts = ("file", "sheet", "row")
    cols["origin"] = Table(Origin, {f: [getattr(o, f) for o in cols["origin"]] for f in parts})
    winners = {f: [getattr(w, f, None) for w in cols["winner"]] for f in parts}
    cols["winner"] = Table(Origin, winners, optional="file")
    table: Table[RowIssue] = Table(RowIssue, cols)
    assert list(table) == issues
    return table


def test_issue_records_are_made_column_wise_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "BATCH", 3)
    a, b = Origin("a.csv", None, 2), Origin("b.xlsx", "S", 9)
    issues = [
        RowIssue(a, "invalid", "too short for region PK", "0300", "Ali"),
        RowIssue(
            b, "duplicate", "same phone as a.csv:2", "+923001112233", "Bo", "+923001112233", a
        ),
        RowIssue(b, "duplicate", "same phone", "03001112233", "=cmd", "+923001112233", a),
        RowIssue(a, "invalid", "=x", "=1+1", ""),
        RowIssue(a, "duplicate", "same phone", "0300 1112233", "Cy", "+923001112233", b),
    ]
    for held in (issues, _issue_table(issues)):
        batches = list(report.issue_batches(held))
        assert [len(b) for b in batches] == [3, 2]
        rows = [r for b in batches for r in zip(*b.columns, strict=True)]
        assert rows == [tuple(report.issue_record(i)) for i in issues]
    assert rows[2][COLUMNS.index("reason")] == "same phone (kept: a.csv:2)"
    assert rows[4][COLUMNS.index("reason")] == "same phone (kept: b.xlsx[S]:9)"


def test_files_are_owner_only_and_atomic(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "sub" / "plan.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("crash in the middle")
    assert path.read_text(encoding="utf-8") == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["plan.json"]


def test_summary_md_appends_to_github_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = tmp_path / "step.md"
    step.write_text("earlier\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    write_summary_md(tmp_path / "summary.md", "| a | 1 |\n")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == "| a | 1 |\n"
    assert step.read_text(encoding="utf-8") == "earlier\n| a | 1 |\n\n"


def _sheets(path: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _slow_renders(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[int]:
    """Every frame report.xlsx's thread renders takes `seconds` longer; their sizes, as rendered."""
    real = xlsx.Sheet.extend_frame
    rendered: list[int] = []

    def slow(self: xlsx.Sheet, frame: Any) -> None:
        time.sleep(seconds)
        rendered.append(frame.height)
        real(self, frame)

    monkeypatch.setattr(xlsx.Sheet, "extend_frame", slow)
    return rendered


def test_xlsx_rows_handed_faster_than_rendered_arrive_all_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.xlsx renders on its own thread: batches wait for it (at most `WAITING` bytes, here 1:
    each render slowed down) and none is lost or reordered."""
    recs = [*hostile_records(), *records()]
    batches = [report.RecordBatch.of(recs[i % 7 :]) for i in range(30)]
    write_xlsx(tmp_path / "quick.xlsx", [], [r for i in range(30) for r in recs[i % 7 :]])
    rendered = _slow_renders(monkeypatch, 0.002)
    monkeypatch.setattr(report._XlsxSink, "WAITING", 1)
    report.write_records(tmp_path, batches, lambda: ({}, []), ["report.xlsx"])
    assert len(rendered) >= len(batches)
    assert _sheets(tmp_path / "report.xlsx") == _sheets(tmp_path / "quick.xlsx")


def _mixed_batches() -> list[report.RecordBatch]:
    """Entries (drift, a failed create) then invalid and duplicate rows, as a report has them."""
    entries = [record("drift", "skipped", phone=f"+9230011{i:05d}") for i in range(5)]
    entries.append(record("create", "failed"))
    issues = [record("invalid", "skipped", name=f"=x{i}") for i in range(4)]
    issues += [record("duplicate", "skipped") for _ in range(3)]
    batch = report.RecordBatch.of
    return [batch(entries[:3]), batch(entries[3:]), batch(issues[:5]), batch(issues[5:])]


def test_xlsx_takes_the_last_batches_ahead_and_writes_the_same_workbook(tmp_path: Path) -> None:
    def finish() -> tuple[dict[str, object], list[tuple[str, object]]]:
        return {}, [("rows read", 13)]

    for name, tail in (("in-order", 0), ("ahead", 2)):
        batches = _mixed_batches()
        out = tmp_path / name
        out.mkdir()
        report.write_records(out, batches, finish, tail=batches[len(batches) - tail :])
    for name in ("report.csv", "report.json"):
        assert (tmp_path / "ahead" / name).read_bytes() == (
            tmp_path / "in-order" / name
        ).read_bytes()
    ahead, in_order = (
        _sheets(tmp_path / "ahead/report.xlsx"),
        _sheets(tmp_path / "in-order/report.xlsx"),
    )
    assert ahead == in_order
    wb = openpyxl.load_workbook(tmp_path / "ahead" / "report.xlsx")
    assert [wb[t].max_row for t in ("Failed", "Invalid", "Duplicates", "Drift")] == [2, 5, 4, 6]


def test_xlsx_refuses_rows_that_would_land_before_rows_taken_ahead(tmp_path: Path) -> None:
    """Taking batches ahead is sound only when no earlier batch fills the same sheets."""
    batches = _mixed_batches()
    with pytest.raises(RuntimeError, match="taken ahead"):
        report.write_records(tmp_path, batches, lambda: ({}, []), tail=batches[:1])
    assert list(tmp_path.iterdir()) == []


def test_report_files_opened_then_left_unwritten_leave_nothing(tmp_path: Path) -> None:
    """`open_records` starts report.xlsx's helper on the tail at once; a block that fails (the
    plan.json beside it could not be written) or never writes the records leaves no file."""
    batches = _mixed_batches()
    with pytest.raises(OSError, match="No space"), report.open_records(tmp_path, tail=batches[2:]):
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="not written"), report.open_records(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []
    with report.open_records(tmp_path, tail=batches[2:]) as records:
        records.write(batches, lambda: ({}, []))
        with pytest.raises(RuntimeError, match="once"):
            records.write(batches, lambda: ({}, []))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["report.csv", "report.json", "report.xlsx"]


def test_a_failure_on_the_xlsx_thread_fails_the_report_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.xlsx's rows are rendered on a thread of its own: its error is raised here (at the
    next batch or at the end), its thread is gone afterwards, and no report file is left."""

    def full(self: xlsx.Sheet, frame: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xlsx.Sheet, "extend_frame", full)
    batches = _mixed_batches()
    for tail in (0, 2):  # rows handed in order, or taken ahead
        with pytest.raises(OSError, match="No space left"):
            report.write_records(tmp_path, batches, lambda: ({}, []), tail=batches[4 - tail :])
        assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("report-xlsx")]


def test_a_failed_report_leaves_no_xlsx_thread_and_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[Record]:
        yield from records()
        raise RuntimeError("the plan went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_xlsx(tmp_path / "r.xlsx", [], broken())
    assert not [t for t in threading.enumerate() if t.name.startswith("report-xlsx")]
    assert list(tmp_path.iterdir()) == []


def test_the_sinks_beside_the_others_fail_or_finish_before_any_file_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.csv is written on a thread beside report.json and report.xlsx: its failure is
    raised here, and a failure here waits for it, so nothing writes into a removed file."""
    batches = list(report.batched(records()))
    real_add = report._CsvSink.add

    def csv_fails(self: Any, batch: report.RecordBatch) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report._CsvSink, "add", csv_fails)
    with pytest.raises(OSError, match="No space left"):
        report.write_records(tmp_path, batches, lambda: ({}, []))
    assert list(tmp_path.iterdir()) == []

    finished: list[str] = []

    def csv_slow(self: Any, batch: report.RecordBatch) -> None:
        time.sleep(0.3)
        real_add(self, batch)
        finished.append(threading.current_thread().name)

    def json_fails(self: Any, batch: report.RecordBatch) -> None:
        raise RuntimeError("the JSON went away")

    monkeypatch.setattr(report._CsvSink, "add", csv_slow)
    monkeypatch.setattr(report._JsonSink, "add", json_fails)
    with pytest.raises(RuntimeError, match="went away"):
        report.write_records(tmp_path, batches, lambda: ({}, []))
    assert finished and finished[0] != threading.current_thread().name
    assert list(tmp_path.iterdir()) == []


def test_report_csv_may_run_one_batch_behind_but_its_failure_still_stops_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.csv's thread works on a batch while the next one is made here: a failure there
    is raised at the next batch (or at the end), a failure here waits for it, and either way no
    file is left; when nothing fails the CSV has every batch, in order."""
    recs = list(records())
    batches = [report.RecordBatch.of([r]) for r in recs]
    assert len(batches) >= 3
    real_add = report._CsvSink.add
    seen: list[int] = []

    def csv_fails_second(self: Any, batch: report.RecordBatch) -> None:
        seen.append(id(batch))
        if len(seen) == 2:
            raise OSError(28, "No space left on device")
        real_add(self, batch)

    monkeypatch.setattr(report._CsvSink, "add", csv_fails_second)
    with pytest.raises(OSError, match="No space left"):
        report.write_records(tmp_path, batches, lambda: ({}, []))
    assert seen[:2] == [id(batches[0]), id(batches[1])]
    assert list(tmp_path.iterdir()) == []

    def late() -> Iterator[report.RecordBatch]:
        yield from batches[:2]
        raise RuntimeError("the plan went away")

    finished: list[int] = []

    def csv_slow(self: Any, batch: report.RecordBatch) -> None:
        time.sleep(0.2)
        real_add(self, batch)
        finished.append(id(batch))

    monkeypatch.setattr(report._CsvSink, "add", csv_slow)
    with pytest.raises(RuntimeError, match="went away"):
        report.write_records(tmp_path, late(), lambda: ({}, []))
    assert finished == [id(batches[0]), id(batches[1])], "waited for, not cut off"
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(report._CsvSink, "add", real_add)
    report.write_records(tmp_path, batches, lambda: ({}, []))
    whole = tmp_path / "whole.csv"
    write_csv(whole, recs)
    assert (tmp_path / "report.csv").read_bytes() == whole.read_bytes()


def test_sheets_filled_ahead_are_sealed_early_with_their_excel_limit_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sheets the last batches fill are compressed into the zip as soon as they are taken
    ahead (before the entries' rows arrive), notes included; the workbook reads the same."""
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    entries = [record("drift", "skipped", phone=f"+9230011{i:05d}") for i in range(2)]
    issues = [record("invalid", "skipped", phone=f"+9230022{i:05d}") for i in range(9)]
    batches = [report.RecordBatch.of(entries), report.RecordBatch.of(issues)]
    sealed: list[int] = []
    real_seal = xlsx.Workbook.seal

    def seal(self: xlsx.Workbook, index: int) -> None:
        sealed.append(index)
        real_seal(self, index)

    monkeypatch.setattr(xlsx.Workbook, "seal", seal)
    report.write_records(tmp_path, batches, lambda: ({}, []), tail=batches[1:])
    assert sealed == [report.ATTENTION.index("Invalid") + 1]
    with zipfile.ZipFile(tmp_path / "report.xlsx") as zf:
        names = zf.namelist()
    invalid_part = f"xl/worksheets/sheet{sealed[0] + 1}.xml"
    assert names.index(invalid_part) < names.index("xl/workbook.xml"), "written first"
    wb = openpyxl.load_workbook(tmp_path / "report.xlsx")
    rows = list(wb["Invalid"].values)
    assert len(rows) == 4 and rows[-1][0] == "7 more rows than Excel can hold: see report.csv"
    assert wb["Drift"].max_row == 3


def _xml(sheet: xlsx.Sheet) -> bytes:
    """The sheet's finished XML, inflated from its part."""
    part = sheet.finish()
    try:
        return zlib.decompress(part.file.read(), -15)
    finally:
        part.close()


_CELL_TEXT = st.text(
    alphabet=st.sampled_from(list("ab <>&'\"=+-\x01\x0b\x1c\ufffe\t\n\x85\xa0\u3000\u2028é中")),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 4).flatmap(
        lambda n: st.lists(
            st.one_of(
                st.lists(st.one_of(st.none(), _CELL_TEXT), min_size=n, max_size=n),
                st.lists(st.one_of(st.none(), st.integers(-5, 10**12)), min_size=n, max_size=n),
                st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n),
                st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n, max_size=n),
            ),
            min_size=1,
            max_size=5,
        )
    ),
    st.integers(0, 3),
    st.sampled_from([1, 2, 4096]),
)
def test_sheet_frames_make_the_same_xml_as_rows(
    columns: list[list[object]], before: int, at_once: int
) -> None:
    """`extend_frame` (XML made by polars) writes exactly what `append` writes row by row:
    escaping, characters XML forbids removed, leading and trailing space kept (and said so only
    then), empty and None cells left out, integers as numbers, other types through the rows."""
    frame = pl.DataFrame({f"c{j}": col for j, col in enumerate(columns)})
    by_rows, by_frame = xlsx.Sheet("a", frozen_header=True), xlsx.Sheet("a", frozen_header=True)
    for sheet in (by_rows, by_frame):
        for _ in range(before):
            sheet.append(("head", 1), bold=True)
    for row in frame.iter_rows():
        by_rows.append(row)
    with mock.patch.object(xlsx, "_ROWS_AT_ONCE", at_once):  # rendered in blocks of rows
        by_frame.extend_frame(frame)
    assert (by_frame.rows, by_frame.width) == (by_rows.rows, by_rows.width)
    assert _xml(by_frame) == _xml(by_rows)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("frame"), st.integers(0, 5), st.sampled_from(["text", "int"])),
            st.tuples(st.just("row"), st.integers(1, 1), st.just("text")),
        ),
        max_size=12,
    ),
    st.sampled_from([1, 3, 8]),
)
def test_sheet_frames_given_in_turn_keep_their_order_and_numbers(
    steps: list[tuple[str, int, str]], at_once: int
) -> None:
    """Small frames wait to be rendered together: mixed with single rows and frames of other
    types, every row still lands in order, with its number and its own cell types."""
    by_rows, by_frame = xlsx.Sheet("a", frozen_header=True), xlsx.Sheet("a", frozen_header=True)
    with mock.patch.object(xlsx, "_ROWS_AT_ONCE", at_once):
        for k, (kind, n, typed) in enumerate(steps):
            values: list[object] = [
                f"v{k}.{i}" if typed == "text" else k * 10 + i for i in range(n)
            ]
            if kind == "row":
                by_rows.append((f"r{k}", None))
                by_frame.append((f"r{k}", None))
                continue
            frame = pl.DataFrame({"a": values, "b": [None] * n}, schema_overrides={"b": pl.String})
            for row in frame.iter_rows():
                by_rows.append(row)
            by_frame.extend_frame(frame)
            assert by_frame.rows == by_rows.rows
    assert _xml(by_frame) == _xml(by_rows)


def test_xlsx_keeps_edge_spaces_and_says_so_only_there(tmp_path: Path) -> None:
    names = [" lead", "trail\u3000", "in side", "\xa0both\n"]
    recs = [record("invalid", "skipped", name=n) for n in names]
    path = tmp_path / "r.xlsx"
    write_xlsx(path, [], recs)
    xml = _sheets(path)[f"xl/worksheets/sheet{report.ATTENTION.index('Invalid') + 2}.xml"]
    assert xml.count(b'xml:space="preserve"') == 3
    wb = openpyxl.load_workbook(path)
    column = COLUMNS.index("name") + 1
    assert [wb["Invalid"].cell(i, column).value for i in range(2, 6)] == names


def test_a_failed_report_drops_the_rows_still_waiting_for_the_xlsx_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a failure (or Ctrl-C) the rows handed to report.xlsx's thread and not started are
    dropped, not rendered into a file that is about to go."""
    rendered = _slow_renders(monkeypatch, 0.2)
    invalid = [record("invalid", "skipped", phone=f"+9230011{i:05d}") for i in range(6)]

    def batches() -> Iterator[report.RecordBatch]:
        for r in invalid:
            yield report.RecordBatch.of([r])
        raise RuntimeError("the plan went away")

    with pytest.raises(RuntimeError, match="went away"):
        report.write_records(tmp_path, batches(), lambda: ({}, []))
    assert len(rendered) < len(invalid)
    assert list(tmp_path.iterdir()) == []
