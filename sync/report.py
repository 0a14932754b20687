"""The reconciliation report: report.json, report.csv, rejected.csv, report.xlsx, summary.md.

Every source row appears once (as a contact, an invalid row or a duplicate) and every
remote-only contact once. Files are written atomically and owner-only. Cells a spreadsheet would
run as formulas are neutralised in CSV and XLSX, while phone numbers stay readable.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from sync.files import atomic_path, write_atomic
from sync.models import RowIssue

EXCEL_MAX_ROWS = 1_048_576
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[\d\s().-]*")  # a phone or number: no letters, nothing to run


def safe_cell(value: object) -> str:
    """Text for a CSV/XLSX cell that no spreadsheet will evaluate as a formula.

    `+44 20 7946 0958` and `-5` stay as they are (digits and punctuation cannot call anything);
    `=HYPERLINK(...)`, `+cmd|...`, `@SUM(...)` get a leading apostrophe, as OWASP advises.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


@dataclass(frozen=True, slots=True)
class Record:
    """One row of the report: a source row or a remote-only contact."""

    file: str
    sheet: str
    row: int | None
    raw_phone: str
    phone: str
    name: str
    groups: str
    action: str  # create, delete, replace, unchanged, drift, skip_optout, keep, invalid, duplicate
    outcome: str  # planned, done, recovered, failed, not_attempted, unverified, unchanged, skipped
    reason: str
    remote_id: int | None
    attempts: int


COLUMNS = tuple(f.name for f in fields(Record))
ATTENTION: dict[
    str, Callable[[Record], bool]
] = {  # report.xlsx: a sheet per outcome that needs a person's attention
    "Failed": lambda r: r.outcome in ("failed", "not_attempted", "unverified"),
    "Invalid": lambda r: r.action == "invalid",
    "Duplicates": lambda r: r.action == "duplicate",
    "Drift": lambda r: r.action == "drift",
    "Opted out": lambda r: r.action == "skip_optout",
    "Deleted": lambda r: r.action in ("delete", "replace"),
}


def issue_record(issue: RowIssue) -> Record:
    reason = issue.reason
    if issue.winner is not None and str(issue.winner) not in reason:
        reason = f"{reason} (kept: {issue.winner})"
    return Record(
        file=issue.origin.file,
        sheet=issue.origin.sheet or "",
        row=issue.origin.row,
        raw_phone=issue.raw_phone,
        phone=issue.phone or "",
        name=issue.name,
        groups="",
        action=issue.kind,
        outcome="skipped",
        reason=reason,
        remote_id=None,
        attempts=0,
    )


def _atomic_text(path: Path, write: Callable[[TextIO], None], *, newline: str = "") -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline=newline) as fh:
        write(fh)


def write_csv(path: Path, records: Iterable[Record]) -> None:
    def write(fh: TextIO) -> None:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for r in records:
            out.writerow([safe_cell(v) for v in astuple(r)])

    _atomic_text(path, write)


def write_rejected(path: Path, issues: Sequence[RowIssue]) -> None:
    """Invalid rows with their original columns and the reason: fix them and feed them back."""
    originals: dict[str, None] = {}
    for issue in issues:
        originals.update(dict.fromkeys(issue.columns))
    head = ["file", "sheet", "row", "reason"]
    original_cols = [c for c in originals if c not in head]

    def write(fh: TextIO) -> None:
        out = csv.writer(fh)
        out.writerow([*original_cols, *head])
        for i in issues:
            cells = [i.columns.get(c, "") for c in original_cols]
            meta = [i.origin.file, i.origin.sheet or "", i.origin.row, i.reason]
            out.writerow([safe_cell(v) for v in (*cells, *meta)])

    _atomic_text(path, write)


def write_json(path: Path, summary: Mapping[str, Any], records: Iterable[Record]) -> None:
    """report.json, streamed: a summary object and one record per row."""

    def write(fh: TextIO) -> None:
        fh.write('{"summary": ')
        fh.write(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        fh.write(',\n "records": [')
        sep = "\n  "
        for r in records:
            fh.write(
                sep + json.dumps(dict(zip(COLUMNS, astuple(r), strict=True)), ensure_ascii=False)
            )
            sep = ",\n  "
        fh.write("\n ]\n}\n")

    _atomic_text(path, write, newline="\n")


def _append(ws: WriteOnlyWorksheet, values: Sequence[object], *, bold: bool = False) -> None:
    row = []
    for v in values:
        cell = WriteOnlyCell(ws, value=v if isinstance(v, int) else safe_cell(v))
        if isinstance(v, str) or v is None:
            cell.number_format = "@"  # text: phones keep their digits and their `+`
        if bold:
            cell.font = Font(bold=True)
        row.append(cell)
    ws.append(row)


def write_xlsx(
    path: Path, summary_rows: Sequence[tuple[str, object]], records: Callable[[], Iterator[Record]]
) -> None:
    """report.xlsx in constant memory (openpyxl write-only): Summary, then attention sheets."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Summary")
    _append(ws, ("what", "value"), bold=True)
    for key, value in summary_rows:
        _append(ws, (key, value if isinstance(value, int) else str(value)))
    for title, wanted in ATTENTION.items():
        ws = wb.create_sheet(title)
        ws.freeze_panes = "A2"
        _append(ws, COLUMNS, bold=True)
        n = 1
        for r in records():
            if not wanted(r):
                continue
            if n == EXCEL_MAX_ROWS - 1:
                _append(ws, ("… more rows than Excel can hold: see report.csv for all of them",))
                n += 1
                break
            _append(ws, astuple(r))
            n += 1
        ws.auto_filter.ref = f"A1:{chr(ord('A') + len(COLUMNS) - 1)}{n}"
    with atomic_path(path) as tmp:
        wb.save(tmp)


def summary_markdown(title: str, rows: Sequence[tuple[str, object]]) -> str:
    lines = [f"### {title}", "", "| | |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def write_summary_md(path: Path, markdown: str) -> None:
    write_atomic(path, markdown)
    if step := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step).open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
