"""The reconciliation report: report.json, report.csv, rejected.csv, report.xlsx, summary.md.

Every source row appears once (as a contact, an invalid row or a duplicate) and every
remote-only contact once. Files are written atomically and owner-only. Cells a spreadsheet would
run as formulas are neutralised in CSV and XLSX, while phone numbers stay readable.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from itertools import chain, islice, repeat
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple, Protocol

import polars as pl
from polars.datatypes import DataTypeClass

from sync import xlsx
from sync.files import DirectWriter, atomic_path, through_pipe, write_atomic
from sync.models import Origin, RowIssue, origin_text
from sync.table import Table, all_equal, column, each

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARS = frozenset(_FORMULA_START)  # `x[:1] in` this: "" is not in it
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


class Record(NamedTuple):
    """One row of the report: a source row or a remote-only contact (a tuple: cheap to make
    and written to CSV as it is)."""

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


COLUMNS = Record._fields
# report.xlsx: a sheet per outcome that needs a person's attention
ATTENTION = ("Failed", "Invalid", "Duplicates", "Drift", "Opted out", "Deleted")
_SHEET_OF_ACTION = {
    "invalid": "Invalid",
    "duplicate": "Duplicates",
    "drift": "Drift",
    "skip_optout": "Opted out",
    "delete": "Deleted",
    "replace": "Deleted",
}
_FAILED = frozenset({"failed", "not_attempted", "unverified"})
_ON_SHEET: Final = {  # `attention()` for polars: which records each sheet shows
    "Failed": pl.col("outcome").is_in(sorted(_FAILED)),
    **{
        title: pl.col("action").is_in([a for a, t in _SHEET_OF_ACTION.items() if t == title])
        for title in ATTENTION[1:]
    },
}


def attention(r: Record) -> list[str]:
    """The attention sheets a record belongs on (most belong on none)."""
    sheets = ["Failed"] if r.outcome in _FAILED else []
    if title := _SHEET_OF_ACTION.get(r.action):
        sheets.append(title)
    return sheets


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


def sheet_cell(sheet: str | None) -> str:
    return sheet or ""  # a CSV's rows have no sheet: an empty cell


def issue_batches(issues: Sequence[RowIssue]) -> Iterator[RecordBatch]:
    """The records of these issues (as `issue_record` makes them), a batch at a time, built
    column-wise (a Table's columns are read as they are)."""
    for at in range(0, len(issues), BATCH):
        chunk = issues[at : at + BATCH]
        n = len(chunk)
        origins = column(chunk, "origin")
        reasons = [
            r if w is None or w in r else f"{r} (kept: {w})"
            for r, w in zip(
                column(chunk, "reason"), _origin_texts(column(chunk, "winner")), strict=True
            )
        ]
        yield RecordBatch(
            [
                column(origins, "file"),
                each(sheet_cell, column(origins, "sheet")),
                column(origins, "row"),
                column(chunk, "raw_phone"),
                [p or "" for p in column(chunk, "phone")],
                column(chunk, "name"),
                list(repeat("", n)),
                column(chunk, "kind"),
                list(repeat("skipped", n)),
                reasons,
                list(repeat(None, n)),
                list(repeat(0, n)),
            ]
        )


def _origin_texts(origins: Sequence[Origin | None]) -> list[str | None]:
    """`str()` of each origin (None stays None), from a Table's columns without making the
    origins (a duplicate row's winner: at a million rows, ~50,000 of them)."""
    if not isinstance(origins, Table):
        return [None if o is None else str(o) for o in origins]
    files, sheets, rows = (column(origins, f) for f in ("file", "sheet", "row"))
    return [
        None if f is None else origin_text(f, s, r)
        for f, s, r in zip(files, sheets, rows, strict=True)
    ]


def safe_record(r: Record) -> Record:
    """The record with its free-text cells neutralised. A hot path at a million rows: a cheap
    test first, and a raw phone such as `+44 7911 123456` (the usual trigger) stays as it is."""
    f = _FORMULA_CHARS
    if (
        r.name[:1] in f
        or r.reason[:1] in f
        or r.groups[:1] in f
        or r.file[:1] in f
        or r.sheet[:1] in f
    ):
        return r._replace(
            file=safe_cell(r.file),
            sheet=safe_cell(r.sheet),
            raw_phone=safe_cell(r.raw_phone),
            name=safe_cell(r.name),
            groups=safe_cell(r.groups),
            reason=safe_cell(r.reason),
        )
    if r.raw_phone[:1] in f and not _PLAIN_NUMBER.fullmatch(r.raw_phone):
        return r._replace(raw_phone="'" + r.raw_phone)
    return r


def write_rejected(path: Path, issues: Sequence[RowIssue]) -> None:
    """Invalid rows with their original columns and the reason: fix them and feed them back.

    Made column-wise and written by polars a batch at a time, as report.csv is (the same bytes
    as csv.writer's, every cell neutralised like `safe_cell`): at a million rows a file can hold
    hundreds of thousands of invalid rows."""
    head = ("file", "sheet", "row", "reason")
    layouts = dict.fromkeys(map(tuple, column(issues, "columns")))  # one per source, usually
    original_cols = [c for c in dict.fromkeys(chain.from_iterable(layouts)) if c not in head]
    header = io.StringIO()
    csv.writer(header).writerow([*original_cols, *head])
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fh.write(header.getvalue().encode())
        for at in range(0, len(issues), BATCH):
            chunk = issues[at : at + BATCH]
            origins = column(chunk, "origin")
            columns = _original_cells(column(chunk, "columns"), original_cols)
            columns.append(column(origins, "file"))
            columns.append(each(sheet_cell, column(origins, "sheet")))
            columns.append(column(origins, "row"))
            columns.append(column(chunk, "reason"))
            row_at = len(original_cols) + 2
            text = [j for j in range(len(columns)) if j != row_at]
            frame = pl.DataFrame(
                [
                    _series(f"c{j}", col, pl.Int64 if j == row_at else pl.String)
                    for j, col in enumerate(columns)
                ]
            )
            frame = _with_changed(frame, columns, _safe_columns(columns, frame, text))
            _write_csv_rows(frame, fh)


def _original_cells(
    cells: Sequence[Mapping[str, str]], names: Sequence[str]
) -> list[Sequence[object]]:
    """Each named column of these rows' original cells ("" where a row lacks it): one pass
    that picks them all when every row has every name (a file's rows do), else a pass a name."""

    def name_by_name() -> list[Sequence[object]]:
        return [list(map(methodcaller("get", c, ""), cells)) for c in names]

    if len(names) < 2 or not cells:
        return name_by_name()
    try:
        rows = list(map(itemgetter(*names), cells))
    except KeyError:  # a row without one of them
        return name_by_name()
    return list(zip(*rows, strict=True))


def _write_csv_rows(frame: pl.DataFrame, fh: BinaryIO | DirectWriter) -> None:
    """The frame's rows as csv.writer writes them: CRLF, minimal quoting, empty cells bare."""
    # polars quotes an empty string to tell it from a null; csv.writer leaves both bare
    frame = frame.with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items()
        if dtype == pl.String
    )
    through_pipe(
        lambda to: frame.write_csv(to, include_header=False, line_terminator="\r\n"),
        fh if isinstance(fh, DirectWriter) else fh.write,
    )


# The report columns as polars types: the bulk sinks hand whole batches to polars, which writes
# CSV and JSON in native code (per-record csv.writer and orjson calls were 4.6 s of a 1M-row run)
_INT_COLUMNS: Final = frozenset({"row", "remote_id", "attempts"})
_SCHEMA: Final = {c: pl.Int64 if c in _INT_COLUMNS else pl.String for c in COLUMNS}
_FREE_TEXT: Final = tuple(
    COLUMNS.index(c) for c in ("file", "sheet", "raw_phone", "name", "groups", "reason")
)
BATCH: Final = 50_000
# `safe_cell` changes a cell that starts like a formula and is not a plain number; for polars,
# one regex: `=` or `@` first, or `+ - \t \r` first and then a character no plain number has.
# Its class is narrower than `_PLAIN_NUMBER`'s (ASCII digits; and Rust's `\s` is narrower than
# Python's), so it may find a few cells too many, never too few: `safe_cell` settles those.
_UNSAFE: Final = "^(?:[=@]|[-+\t\r](?s:.)*[^0-9\\s().-])"


def _frame(columns: Sequence[Sequence[object]]) -> pl.DataFrame:
    return pl.DataFrame(
        {c: _series(c, col, _SCHEMA[c]) for c, col in zip(COLUMNS, columns, strict=True)}
    )


def _series(name: str, values: Sequence[object], dtype: DataTypeClass) -> pl.Series:
    """A column as polars holds it. Most report columns hold one value for a whole batch (the
    file, the sheet, the groups, the action, the outcome, no remote id, no attempt): polars
    repeats it instead of reading 50,000 Python objects."""
    if all_equal(values):  # one value, repeated in native code (no lazy query: 10x cheaper)
        return pl.Series(name, values[:1], dtype=dtype).new_from_index(0, len(values))
    return pl.Series(name, values, dtype=dtype)


def _with_changed(
    frame: pl.DataFrame, columns: Sequence[Sequence[object]], safe: Sequence[Sequence[object]]
) -> pl.DataFrame:
    """`frame` (made of `columns`) with the text columns `_safe_columns` changed replaced."""
    changed = [j for j, col in enumerate(safe) if col is not columns[j]]
    if not changed:
        return frame
    names = frame.columns
    return frame.with_columns(pl.Series(names[j], safe[j], dtype=pl.String) for j in changed)


def _safe_columns(
    columns: list[Sequence[object]], frame: pl.DataFrame, text: Iterable[int] = _FREE_TEXT
) -> list[Sequence[object]]:
    """The columns with the cells of the `text` columns neutralised (`safe_cell`), column-wise:
    polars finds, in one call, the cells that may start a formula (`_UNSAFE`: a few too many,
    never too few), and `safe_cell` settles those. A column with nothing to change is returned
    as the same object."""
    out = list(columns)
    varied = []
    for j in text:
        if all_equal(columns[j]):  # one value (a file name, a sheet, the groups): one check
            value = columns[j][0]
            if (cell := safe_cell(value)) != value:
                out[j] = [cell] * len(columns[j])
        else:
            varied.append(j)
    found = (
        frame.select(_suspects(pl.nth(j)).alias(str(j)) for j in varied).row(0) if varied else ()
    )
    for j, hits in zip(varied, found, strict=True):
        cells = [safe_cell(columns[j][i]) for i in hits]
        if any(cell != columns[j][i] for i, cell in zip(hits, cells, strict=True)):
            fixed = out[j] = list(columns[j])
            for i, cell in zip(hits, cells, strict=True):
                fixed[i] = cell
    return out


def _suspects(col: pl.Expr) -> pl.Expr:
    """The rows (a list) whose cell `safe_cell` may change (`_UNSAFE`)."""
    return col.str.contains(_UNSAFE).arg_true().implode()


class RecordBatch:
    """Report records, column-wise: one sequence per field of `Record`, in `COLUMNS` order.
    The sinks share it: transposed (or built as columns) once, a polars frame made once."""

    def __init__(self, columns: Sequence[Sequence[object]]) -> None:
        if len(columns) != len(COLUMNS) or len({len(c) for c in columns}) > 1:
            raise ValueError(f"a record batch needs {len(COLUMNS)} columns of one length")
        self.columns = list(columns)
        self._raw: pl.DataFrame | None = None
        self._safe: list[Sequence[object]] | None = None
        self._safe_frame: pl.DataFrame | None = None
        self._making = threading.RLock()  # each is made once, by the first thread that asks

    @classmethod
    def of(cls, records: Sequence[Record]) -> RecordBatch:
        return cls(list(zip(*records, strict=True)) or [()] * len(COLUMNS))

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def raw(self) -> pl.DataFrame:
        with self._making:
            if self._raw is None:
                self._raw = _frame(self.columns)
            return self._raw

    def safe_columns(self) -> list[Sequence[object]]:
        """The columns with free-text cells neutralised (report.csv's and report.xlsx's, made
        on their threads while report.json is written from `raw`)."""
        with self._making:
            if self._safe is None:
                self._safe = _safe_columns(self.columns, self.raw)
            return self._safe

    def safe(self) -> pl.DataFrame:
        with self._making:
            if self._safe_frame is None:
                self._safe_frame = _with_changed(self.raw, self.columns, self.safe_columns())
            return self._safe_frame

    def sheet_rows(self) -> dict[str, list[int]]:
        """The rows of each attention sheet, in order (what `attention()` says record by record,
        found by polars: most records belong on none); the sheets without rows left out."""
        if not len(self):
            return {}
        found = self.raw.select(
            pl.int_range(pl.len()).filter(on_sheet).implode().alias(title)
            for title, on_sheet in _ON_SHEET.items()
        )
        return {title: rows for title, rows in zip(_ON_SHEET, found.row(0), strict=True) if rows}


class _CsvSink:
    """report.csv, as csv.writer would write it (CRLF, minimal quoting, empty cells bare)."""

    beside = True

    def __init__(self, tmp: Path) -> None:
        self._fh = DirectWriter(tmp)
        self._fh.write(",".join(COLUMNS).encode() + b"\r\n")

    def add(self, batch: RecordBatch) -> None:
        _write_csv_rows(batch.safe(), self._fh)

    def close(self, summary: Mapping[str, Any], rows: Sequence[tuple[str, object]]) -> None:
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()


class _JsonSink:
    """report.json: the summary first (known only at the end), then the records. Records are
    written in place as they come (JSON lines from polars, re-joined into the array), after
    room kept for the summary, which is written into that room at the end and padded with
    spaces (JSON whitespace). A summary too big for the room moves the records once."""

    beside = True
    ROOM: Final = 8 * 1024  # a summary is ~1 KB; a long refusal or verify error fits too

    _SEP: Final = b",\n  "

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._fh = DirectWriter(tmp)
        self._fh.write(b" " * self.ROOM + b',\n "records": [')
        self._held = b"\n  "  # what goes before the next record, if one comes

    def add(self, batch: RecordBatch) -> None:
        if len(batch):
            through_pipe(batch.raw.write_ndjson, self._lines)

    def _lines(self, chunk: bytes) -> None:
        """JSON lines → array elements. A newline inside a JSON string is escaped, so every raw
        newline ends a record; the separator after the last record so far is held back (the
        array's end needs none). Each chunk is copied once, by the replace (joining the held
        separator on and cutting one off copied 280 MB twice more at a million records)."""
        out = chunk.replace(b"\n", self._SEP)
        self._fh.write(self._held)
        held = self._SEP if chunk.endswith(b"\n") else b""
        with memoryview(out) as view, view[: len(out) - len(held)] as records:
            self._fh.write(records)
        self._held = held

    def close(self, summary: Mapping[str, Any], rows: Sequence[tuple[str, object]]) -> None:
        head = (
            b'{"summary": '
            + json.dumps(summary, indent=2, ensure_ascii=False, default=str).encode()
        )
        with self._fh as out:
            out.write(b"\n ]\n}\n")
        with self._tmp.open("r+b") as fh:
            if len(head) <= self.ROOM:
                fh.write(head + b" " * (self.ROOM - len(head)))
                return
            _prepend(fh, head, self.ROOM)

    def abort(self) -> None:
        self._fh.close()


def _prepend(fh: BinaryIO, head: bytes, room: int) -> None:
    """Replace the first `room` bytes of `fh` (a file on disk) by `head`, which is longer:
    the rest moves once, through a temporary file beside it (in the kernel where it can)."""
    with tempfile.TemporaryFile(dir=Path(fh.name).parent) as rest:
        _append_file_from(fh, room, rest)
        fh.seek(0)
        fh.truncate()
        fh.write(head)
        _append_file_from(rest, 0, fh)


def _append_file_from(src: BinaryIO, start: int, dst: BinaryIO) -> None:
    """Append `src` from byte `start` to its end onto `dst`: in the kernel where it can
    (copy_file_range: no trip through Python buffers), else in 1 MiB chunks."""
    src.flush()
    dst.flush()
    size = os.fstat(src.fileno()).st_size
    done = start
    dst.seek(0, os.SEEK_END)
    with contextlib.suppress(OSError, AttributeError):
        while done < size:
            sent = os.copy_file_range(src.fileno(), dst.fileno(), size - done, done)
            if sent == 0:
                break
            done += sent
    if done < size:
        src.seek(done)
        dst.seek(0, os.SEEK_END)
        shutil.copyfileobj(src, dst, 1 << 20)
    dst.seek(0, os.SEEK_END)


class _XlsxSink:
    """report.xlsx in constant memory: Summary, then a sheet per outcome that needs attention,
    each with a frozen, filtered header and phones as text. A sheet that would pass Excel's row
    limit ends with a note pointing to report.csv.

    Its rows are rendered (by polars) and deflated (`xlsx.Part`), both mostly without the GIL, on
    a thread of its own, in the order they come: `add` only hands a batch over, and waits only
    when `WAITING` bytes of rows wait already (bounded memory). A failure there is raised
    here, at the next `add` or at `close`."""

    beside = False
    WAITING: Final = 16 << 20

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._wb = xlsx.Workbook()
        self._summary = self._wb.add_sheet("Summary", frozen_header=False)
        self._sheets = {title: self._wb.add_sheet(title) for title in ATTENTION}
        self._dropped = dict.fromkeys(ATTENTION, 0)
        for sheet in self._sheets.values():
            sheet.append(COLUMNS, bold=True)
        self._wb.open(tmp)
        self._taken: set[int] = set()  # batches taken ahead (`take_ahead`), by id
        self._ahead: set[str] = set()  # the sheets they filled
        self._worker = ThreadPoolExecutor(1, "report-xlsx")
        self._work: deque[Future[None]] = deque()  # handed over, in order
        self._waiting: deque[tuple[Future[None], int]] = deque()  # `add`'s, with their size
        self._waiting_bytes = 0

    def _later(self, fn: Callable[[], None]) -> Future[None]:
        while self._work and self._work[0].done():
            self._work.popleft().result()  # an error there: raised here
        done = self._worker.submit(fn)
        self._work.append(done)
        return done

    def take_ahead(self, batch: RecordBatch) -> None:
        """Take one of the last batches before its turn, so its rows are rendered while the
        other files are written. Its rows keep their order: each sheet holds one outcome, and
        the sheets these rows fill must get no row from the batches before them (checked)."""
        self._taken.add(id(batch))
        self._later(lambda: self._render(_sheet_frames(batch), ahead=True))

    def seal_ahead(self) -> None:
        """The sheets the batches taken ahead filled are finished (`add` refuses rows for them):
        they go into the zip now, beside the other writers, instead of at `close` while the run
        waits (at a million rows, most of the workbook)."""
        self._later(self._seal_ahead)

    def _seal_ahead(self) -> None:
        for title in sorted(self._ahead, key=ATTENTION.index):  # the zip's order: the same
            self._note_dropped(title)
            self._wb.seal(ATTENTION.index(title) + 1)  # sheet 0 is the Summary

    def _note_dropped(self, title: str) -> None:
        if n := self._dropped.pop(title, 0):
            self._sheets[title].append((f"{n} more rows than Excel can hold: see report.csv",))

    def add(self, batch: RecordBatch) -> None:
        """Hand the batch's rows for the sheets (most batches of a large plan have none: they
        are creates) to the thread; only those rows are held until it takes them."""
        if id(batch) in self._taken:
            return
        if not (frames := _sheet_frames(batch)):
            return
        size = int(sum(f.estimated_size() for f in frames.values()))
        while self._waiting and (
            self._waiting[0][0].done() or self._waiting_bytes + size > self.WAITING
        ):
            done, took = self._waiting.popleft()
            done.result()
            self._waiting_bytes -= took
        self._waiting.append((self._later(lambda: self._render(frames, ahead=False)), size))
        self._waiting_bytes += size

    def _render(self, frames: dict[str, pl.DataFrame], *, ahead: bool) -> None:
        """Rows on their sheets (on the thread)."""
        for title, frame in frames.items():
            if not ahead and title in self._ahead:
                raise RuntimeError(f"report.xlsx: rows for {title!r} after rows taken ahead")
            sheet = self._sheets[title]
            room = xlsx.MAX_ROWS - 1 - sheet.rows  # the last row: the note
            if frame.height > room:
                self._dropped[title] += frame.height - room
                frame = frame.head(room)
            if frame.height:
                sheet.extend_frame(frame)
                if ahead:
                    self._ahead.add(title)

    def close(self, summary: Mapping[str, Any], rows: Sequence[tuple[str, object]]) -> None:
        self._finish_work()
        self._summary.append(("what", "value"), bold=True)
        for key, value in rows:
            self._summary.append((key, value if isinstance(value, int) else str(value)))
        for title in list(self._dropped):
            self._note_dropped(title)
        self._wb.save(self._tmp)

    def _finish_work(self) -> None:
        """Wait for every batch handed over; the first error, if any, raised."""
        try:
            while self._work:
                self._work.popleft().result()
        finally:
            self._worker.shutdown(cancel_futures=True)  # after an error: what waits, dropped

    def abort(self) -> None:
        # what waits is dropped; what runs finishes (it writes only the workbook's own files)
        self._worker.shutdown(cancel_futures=True)
        self._work.clear()
        self._waiting.clear()
        self._wb.abort()


def _sheet_frames(batch: RecordBatch) -> dict[str, pl.DataFrame]:
    """The batch's rows (neutralised) for each attention sheet, in order; none for most. Rows
    picked from a batch are made into a frame of their own: a frame polars picks from another
    keeps the whole batch's text buffers alive while it waits."""
    if not (sheet_rows := batch.sheet_rows()):
        return {}
    n = len(batch)
    if len(sheet_rows) == 1 and len(next(iter(sheet_rows.values()))) == n:
        return {title: batch.safe() for title in sheet_rows}
    columns = batch.safe_columns()
    return {t: _frame(_picked(columns, rows, n)) for t, rows in sheet_rows.items()}


def _picked(columns: Sequence[Sequence[object]], rows: list[int], n: int) -> list[Sequence[object]]:
    """The cells of these rows, column by column: the columns themselves when every one of the
    `n` rows is wanted, else picked in C."""
    if len(rows) == n:
        return list(columns)
    if len(rows) == 1:
        return [[c[rows[0]]] for c in columns]
    pick = itemgetter(*rows)
    return [pick(c) for c in columns]


class _Sink(Protocol):
    beside: bool  # whether its `add` may run on another thread beside the other sinks'

    def add(self, batch: RecordBatch) -> None: ...
    def close(self, summary: Mapping[str, Any], rows: Sequence[tuple[str, object]]) -> None: ...
    def abort(self) -> None: ...


_SINKS: dict[str, Callable[[Path], _Sink]] = {
    "report.csv": _CsvSink,
    "report.json": _JsonSink,
    "report.xlsx": _XlsxSink,
}
Finish = Callable[[], tuple[Mapping[str, Any], Sequence[tuple[str, object]]]]


def batched(records: Iterable[Record]) -> Iterator[RecordBatch]:
    """Records in batches of `BATCH`, for `write_records`."""
    it = iter(records)
    while batch := list(islice(it, BATCH)):
        yield RecordBatch.of(batch)


def write_records(
    out: Path,
    batches: Iterable[RecordBatch],
    finish: Finish,
    names: Sequence[str] = tuple(_SINKS),
    *,
    tail: Sequence[RecordBatch] = (),
) -> None:
    """Write report.csv, report.json and report.xlsx in ONE pass over the records (see
    `open_records`)."""
    with open_records(out, names, tail=tail) as records:
        records.write(batches, finish)


class Records:
    """The report files, open (`open_records`): `write` them once."""

    def __init__(self, sinks: Sequence[tuple[_Sink, ThreadPoolExecutor | None]]) -> None:
        self._sinks = sinks  # each with its own thread when it works `beside` the others
        self.written = False

    def write(self, batches: Iterable[RecordBatch], finish: Finish) -> None:
        """Every record, a batch at a time (made once, shared by the files); `finish()` gives
        the summary and its rows once every record was seen."""
        if self.written:
            raise RuntimeError("the report files are written once")
        # the previous batch and its `beside` work: the batch is let go here once that work is
        # done (`_lent`), so freeing it is not the work of report.json's thread
        before: tuple[RecordBatch | None, list[Future[None]]] = (None, [])
        now: list[Future[None]] = []
        try:
            for batch in batches:
                now = _add(batch, self._sinks)
                _settle(before[1])
                before, now = (batch, now), []
            _settle(before[1])
        finally:
            wait([*before[1], *now])  # on an error too: no write may go on into a removed file
        summary, rows = finish()
        for sink, _ in self._sinks:
            sink.close(summary, rows)
        self.written = True


@contextlib.contextmanager
def open_records(
    out: Path, names: Sequence[str] = tuple(_SINKS), *, tail: Sequence[RecordBatch] = ()
) -> Iterator[Records]:
    """Open report.csv, report.json and report.xlsx in `out`, to be written in ONE pass over the
    records, atomically: they are put in place when the block ends after `Records.write`; on any
    error, or without that write, no file is left.

    `tail`: the last batches the records will have (the same objects), when the caller has them
    already. report.xlsx takes them now, so its thread renders them while the caller goes on:
    with the plan.json it still has to write, then beside the CSV and JSON (at a million rows,
    the invalid and duplicate rows come last and are most of the workbook)."""
    with contextlib.ExitStack() as stack:
        sinks = []
        for name in names:
            sinks.append(_SINKS[name](stack.enter_context(atomic_path(out / name))))
            stack.callback(sinks[-1].abort)  # after a clean close: nothing left to do
        for sink in sinks:
            if isinstance(sink, _XlsxSink):
                for batch in tail:
                    sink.take_ahead(batch)
                sink.seal_ahead()
        records = Records(
            [
                (sink, _thread(stack, name) if sink.beside else None)
                for name, sink in zip(names, sinks, strict=True)
            ]
        )
        yield records
        if not records.written:
            raise RuntimeError("the report files were opened but not written")


def _thread(stack: contextlib.ExitStack, name: str) -> ThreadPoolExecutor:
    """A thread for one report file's writer, shut down with `stack`."""
    return stack.enter_context(ThreadPoolExecutor(1, f"report-{name.split('.')[-1]}"))


def _add(
    batch: RecordBatch, sinks: Sequence[tuple[_Sink, ThreadPoolExecutor | None]]
) -> list[Future[None]]:
    """Hand the batch to every sink: the `beside` ones each to a thread of its own (report.csv
    and report.json: polars formats without the GIL, so they are made at once; the futures
    returned), the others here (report.xlsx hands its rows to its own thread). The frame is made
    here first, once; the threads go on with this batch while this one makes the next one's
    (`Records.write` waits for them then: two batches at most are in flight)."""
    batch.raw  # noqa: B018 - made here, once: its neutralised columns are made beside
    beside = [pool.submit(_lent(sink.add, batch)) for sink, pool in sinks if pool is not None]
    try:
        for sink, pool in sinks:
            if pool is None:
                sink.add(batch)
    except BaseException:
        wait(beside)  # no write may go on into a file being removed
        raise
    return beside


def _lent(add: Callable[[RecordBatch], None], batch: RecordBatch) -> Callable[[], None]:
    """`add(batch)` for a thread, holding no reference to the batch once it returns: the pool
    keeps a task's arguments until after its future is done, so the thread would otherwise
    free the batch (50,000 records) whenever the caller let it go first."""
    lent = [batch]
    return lambda: add(lent.pop())


def _settle(futures: Sequence[Future[None]]) -> None:
    """Wait for this work; its error, if any, is raised here."""
    for done in futures:
        done.result()


def write_csv(path: Path, records: Iterable[Record]) -> None:
    _write_one(path, _CsvSink, records, {}, [])


def write_json(path: Path, summary: Mapping[str, Any], records: Iterable[Record]) -> None:
    _write_one(path, _JsonSink, records, summary, [])


def write_xlsx(
    path: Path, summary_rows: Sequence[tuple[str, object]], records: Iterable[Record]
) -> None:
    _write_one(path, _XlsxSink, records, {}, summary_rows)


def _write_one(
    path: Path,
    sink_type: Callable[[Path], _Sink],
    records: Iterable[Record],
    summary: Mapping[str, Any],
    rows: Sequence[tuple[str, object]],
) -> None:
    with atomic_path(path) as tmp:
        sink = sink_type(tmp)
        try:
            for batch in batched(records):
                sink.add(batch)
            sink.close(summary, rows)
        finally:
            sink.abort()


def summary_markdown(title: str, rows: Sequence[tuple[str, object]]) -> str:
    lines = [f"### {title}", "", "| | |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def write_summary_md(path: Path, markdown: str) -> None:
    write_atomic(path, markdown)
    if step := os.environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step).open("a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
