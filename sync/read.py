"""Files → tables of text cells, each row with the number the user sees in Excel.

CSV/text: the encoding is detected in a fixed order (UTF-8 BOM, UTF-16 LE/BE BOM, UTF-8, then
cp1252, the "ANSI" of Western-European Excel) and the delimiter among `,` `;` tab `|` by which one
splits the first lines most consistently; an Excel `sep=;` first line is honoured. The stdlib csv
module streams the rows: with pandas 3 (no pyarrow) it is faster, and it keeps ragged rows and
record numbers under our control.

Workbooks (XLSX/XLSM/XLS/ODS) are read with python-calamine, about 5x faster than openpyxl; it keeps
cell types (text, number, date) and returns the cached value of formulas, which is all ingest
needs: numbers become their exact digits here, dates an ISO text the phone screen refuses.

Whole-file problems raise InputError with a hint; bad rows are the normaliser's business.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Final

import polars as pl

from sync.errors import InputError

if TYPE_CHECKING:  # python_calamine is imported when a workbook is opened, not for a CSV
    import python_calamine as pc

TEXT_EXTENSIONS: Final = frozenset({".csv", ".txt", ".tsv", ".tab"})
BOOK_EXTENSIONS: Final = frozenset({".xlsx", ".xlsm", ".xls", ".ods"})
DELIMITERS: Final = (",", ";", "\t", "|")
_ZIP = b"PK\x03\x04"
_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2: legacy .xls, or an encrypted workbook
_HEAD = 65536
_CHUNK = 1 << 20
_BATCH = 1 << 14  # records parsed per batch by the bulk CSV reader
# the largest polars frame of a file kept for reading its invalid rows back (beyond it they are
# read again by line): 200k rows of three columns are 10 MB and save 0.06-0.1 s; 1M rows, 52 MB,
# kept through the normalisation, raised a cold plan's peak by 75 MB
_KEEP_FRAME = 32 << 20

Rows = Iterator[tuple[int, list[str]]]
# Batches of data rows: (their row numbers, their cells), blank rows skipped, short rows padded
Batches = Iterator[tuple[Sequence[int], list[list[str]]]]


@dataclass(frozen=True, slots=True)
class Table:
    """One CSV file or one sheet: its header and a re-iterable source of (row number, cells)."""

    path: Path
    sheet: str | None
    kind: str  # csv | xlsx | xlsm | xls | ods
    encoding: str | None
    delimiter: str | None
    header: tuple[str, ...]
    header_row: int
    rows: Callable[[], Rows]  # data rows after the header, blank rows skipped
    skipped: str | None = None  # why this sheet is not read (hidden, empty)
    batches: Callable[[], Batches] | None = None  # the same rows in batches (faster), if offered
    pick: Callable[[Collection[int]], Rows] | None = None  # pick_rows (faster), if offered
    # read_columns (faster) for the files it can read exactly; None: use the batches
    column_reader: Callable[[Sequence[int]], tuple[list[int], list[list[str]]] | None] | None = None


def row_batches(table: Table) -> Batches:
    """The rows of `table` in batches: the same rows, numbers and cells as `table.rows()`."""
    if table.batches is not None:
        yield from table.batches()
        return
    numbers: list[int] = []
    cells: list[list[str]] = []
    for number, row in table.rows():
        numbers.append(number)
        cells.append(row)
        if len(numbers) == _BATCH:
            yield numbers, cells
            numbers, cells = [], []
    if numbers:
        yield numbers, cells


def read_columns(table: Table, cols: Sequence[int]) -> tuple[list[int], list[list[str]]]:
    """The row numbers and the given columns (one list each) of every data row of `table`."""
    if table.column_reader is not None and (got := table.column_reader(cols)) is not None:
        return got
    numbers: list[int] = []
    out: list[list[str]] = [[] for _ in cols]
    for batch_numbers, rows in row_batches(table):
        numbers.extend(batch_numbers)
        for column, j in zip(out, cols, strict=True):
            column.extend(map(itemgetter(j), rows))
    return numbers, out


def pick_rows(table: Table, wanted: Collection[int]) -> Rows:
    """The (row number, cells) of the wanted data rows, in file order."""
    if not wanted:
        return
    if table.pick is not None:
        yield from table.pick(wanted)
        return
    yield from _picked(row_batches(table), wanted)


def _picked(batches: Batches, wanted: Collection[int]) -> Rows:
    left = len(wanted)
    for numbers, rows in batches:
        for k in [k for k, n in enumerate(numbers) if n in wanted]:
            yield numbers[k], rows[k]
            left -= 1
            if not left:
                return


def _fail(path: Path, what: str, hint: str | None = None) -> InputError:
    return InputError(f"{path}: {what}", hint=hint)


def _padded(cells: list[str], width: int) -> list[str]:
    """A short row's cells made as many as the header's, in place (extra cells are kept)."""
    if len(cells) < width:
        cells.extend([""] * (width - len(cells)))
    return cells


def _is_blank(cells: list[str]) -> bool:
    return not any(cells) or not "".join(cells).strip()


def _header(cells: list[str]) -> tuple[str, ...]:
    return tuple(c.strip() or f"(column {i + 1})" for i, c in enumerate(cells))


# -- text files ------------------------------------------------------------------------------------


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13, 12))
    return bool(head) and controls / len(head) > 0.05


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: Path, head: bytes) -> str:
    """BOM first (UTF-8, UTF-16 LE/BE), then strict UTF-8 over the whole file, then cp1252."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(_ZIP):
        raise _fail(path, "is a workbook (ZIP data), not a text/CSV file", "rename it to .xlsx")
    if head.startswith(_CFB):
        raise _fail(
            path,
            "is a legacy Excel (.xls) or password-protected workbook, not a text/CSV file",
            "remove the password in Excel, or save it as .xlsx or CSV UTF-8",
        )
    if _looks_binary(head):
        raise _fail(path, "holds binary data, not text", "export the sheet as CSV UTF-8")
    if _decodes(path, "utf-8"):
        return "utf-8"
    if _decodes(path, "cp1252"):
        return "cp1252"
    raise _fail(
        path,
        "is neither UTF-8 nor cp1252 text",
        "save it from Excel as 'CSV UTF-8 (Comma delimited)'",
    )


def detect_delimiter(sample: str) -> str:
    """The delimiter that gives the header most fields and the next lines the same field count."""
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and len(sample) >= _HEAD // 2:
        lines = lines[:-1]  # the last line of a sample may be cut
    best, best_score = ",", (0.0, 0)
    for delim in DELIMITERS:
        try:
            records = list(csv.reader(lines, delimiter=delim))
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        same = sum(1 for r in records[1:] if len(r) == width) / max(1, len(records) - 1)
        score = (same, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def _csv_table(path: Path) -> Table:
    with path.open("rb") as raw:
        head = raw.read(_HEAD)
    if not head.strip():
        raise _fail(path, "is empty", "export the sheet again; the file has no rows")
    encoding = detect_encoding(path, head)
    with path.open(encoding=encoding, newline="") as fh:
        sample = fh.read(_HEAD)
    skip = 0
    first = sample.split("\n", 1)[0].strip().strip('"')
    if first.lower().startswith("sep=") and len(first) == 5:
        delimiter, skip = first[4], 1  # Excel's "sep=;" line: not a row the user sees
    else:
        delimiter = detect_delimiter(sample)
    if not sample.strip():
        raise _fail(path, "is empty", "export the sheet again; the file has no rows")

    def records() -> Iterator[tuple[int, list[str]]]:
        csv.field_size_limit(1 << 30)
        with path.open(encoding=encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            number = 0
            try:
                for _ in range(skip):
                    next(reader, None)
                for cells in reader:
                    number += 1
                    yield number, cells
            except csv.Error as exc:
                raise _fail(path, f"cannot be parsed near row {number + 1}: {exc}") from None
            except UnicodeDecodeError:  # pragma: no cover - the encoding was checked
                raise _fail(path, f"bad {encoding} text near row {number + 1}") from None

    header: tuple[str, ...] | None = None
    header_row = 0
    for number, cells in records():
        if not _is_blank(cells):
            header, header_row = _header(cells), number
            break
    if header is None:
        raise _fail(path, "is empty (only blank lines)")
    width = len(header)

    def rows() -> Rows:
        for number, cells in records():
            if number <= header_row or _is_blank(cells):
                continue
            yield number, _padded(cells, width)

    # once read through with every record on one line of its own: the lines before the first record
    one_line: list[int] = []
    read_by_polars: list[tuple[list[int], pl.DataFrame]] = []  # column_reader's, until picked

    def batches() -> Batches:
        """rows() in batches, parsed by the csv module without a Python step per row."""
        csv.field_size_limit(1 << 30)
        last = header_row  # the number of the last row handed out
        try:
            with path.open(encoding=encoding, newline="") as fh:
                reader = csv.reader(fh, delimiter=delimiter)
                for _ in range(skip):
                    next(reader, None)
                skipped_lines = reader.line_num
                done = 0  # records read so far: the last one's number
                while batch := list(islice(reader, _BATCH)):
                    first = done + 1
                    done += len(batch)
                    if first <= header_row:
                        batch = batch[header_row - first + 1 :]
                        first = header_row + 1
                    numbers: Sequence[int] = range(first, done + 1)
                    maybe = [k for k, c in enumerate(batch) if not c or not c[0] or c[0].isspace()]
                    blank = {k for k in maybe if _is_blank(batch[k])}
                    if blank:
                        numbers = [n for k, n in enumerate(numbers) if k not in blank]
                        batch = [c for k, c in enumerate(batch) if k not in blank]
                    if batch and min(map(len, batch)) < width:
                        for cells in batch:
                            _padded(cells, width)
                    if batch:
                        last = numbers[-1]
                        yield numbers, batch
                if reader.line_num - skipped_lines == done:
                    one_line[:] = [skipped_lines]
        except (csv.Error, UnicodeDecodeError):
            # the row-by-row reader raises the error worded with its row number
            yield from _batched(r for r in rows() if r[0] > last)

    def pick(wanted: Collection[int]) -> Rows:
        """pick_rows: the rows `column_reader` left in its polars frame when it read the file
        (then freed); else, when no record spans lines (known from a pass of `batches`),
        record N is the file's line N after the `sep=` line, and only the wanted lines are
        parsed (a cold 1M-row plan: ~1 s → 0.47 s to read its invalid rows back)."""
        if read_by_polars:
            numbers, frame = read_by_polars.pop()
            ordered = sorted(wanted)
            at = [bisect_left(numbers, n) for n in ordered]
            if all(k < len(numbers) and numbers[k] == n for k, n in zip(at, ordered, strict=True)):
                rows = frame.select(pl.all().gather(at)).rows()
                yield from zip(ordered, map(list, rows), strict=True)
                return
        if not one_line:
            yield from _picked(batches(), wanted)
            return
        csv.field_size_limit(1 << 30)
        left = len(wanted)
        with path.open(encoding=encoding, newline="") as fh:
            for number, line in enumerate(islice(fh, one_line[0], None), 1):
                if number in wanted:
                    yield number, _padded(next(csv.reader([line], delimiter=delimiter), []), width)
                    left -= 1
                    if not left:
                        return

    def column_reader(wanted: Sequence[int]) -> tuple[list[int], list[list[str]]] | None:
        """read_columns by polars (~3x the csv module) for a plain file, where splitting lines
        at the delimiter is all the csv module would do: UTF-8, no quote character, no line
        break but LF or CRLF, the header on the first line and every line as wide as it. Else
        None (the batches read it)."""
        if skip or header_row != 1 or encoding not in ("utf-8", "utf-8-sig"):
            return None
        data = path.read_bytes()
        if b'"' in data or data.count(b"\r") != data.count(b"\r\n"):
            return None
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        if data.count(delimiter.encode()) != (width - 1) * lines:
            return None  # some line is wider or narrower than the header
        try:
            frame = pl.read_csv(
                io.BytesIO(data),
                has_header=False,
                separator=delimiter,
                quote_char=None,
                infer_schema=False,
                empty_string_is_null=False,
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError:
            return None
        if (
            frame.shape != (lines, width)
            or sum(frame.null_count().row(0))
            or _header(list(frame.row(0))) != header
        ):
            return None
        body = frame.slice(1)
        numbers = list(range(2, lines + 1))
        # blank rows are left out but keep their numbers, as in batches(); the test in polars
        # is a superset ([\s] plus the separators Python's isspace also counts), then Python's
        maybe = body.select(pl.concat_str(pl.all()).str.contains(r"^[\s\x1c-\x1f]*$"))
        candidates = maybe.to_series().arg_true().to_list()
        blank = [k for k in candidates if _is_blank(list(body.row(k)))]
        if blank:
            body = body.filter(pl.Series([True] * body.height).scatter(blank, False))
            gone = set(blank)
            numbers = [n for k, n in enumerate(numbers) if k not in gone]
        one_line[:] = [0]  # every record is a line: rows can be picked back by line
        if body.estimated_size() <= _KEEP_FRAME:  # kept for `pick` (the invalid rows' cells)
            read_by_polars[:] = [(numbers, body)]
        return numbers, [body.to_series(j).to_list() for j in wanted]

    return Table(
        path,
        None,
        "csv",
        encoding,
        delimiter,
        header,
        header_row,
        rows,
        batches=batches,
        pick=pick,
        column_reader=column_reader,
    )


def _batched(rows: Rows) -> Batches:
    for number, cells in rows:
        yield [number], [cells]


# -- workbooks -------------------------------------------------------------------------------------


def cell_text(value: object) -> str:
    """A workbook cell as text: numbers as their exact digits (no `.0`, no exponent), ISO dates."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "NaN"
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _open_book(path: Path) -> pc.CalamineWorkbook:
    import python_calamine as pc

    with path.open("rb") as fh:
        head = fh.read(8)
    suffix = path.suffix.lower()
    if not head:
        raise _fail(path, "is empty", "export the workbook again")
    if suffix in (".xlsx", ".xlsm", ".ods") and head.startswith(_CFB):
        raise _fail(
            path,
            "is password-protected (encrypted) or a legacy .xls renamed",
            "remove the password in Excel (File > Info > Protect Workbook) or save as CSV",
        )
    if suffix in (".xlsx", ".xlsm", ".ods") and not head.startswith(_ZIP):
        raise _fail(path, f"is not a {suffix} workbook (no ZIP signature)", _rename_hint(head))
    if suffix == ".xls" and not head.startswith(_CFB):
        raise _fail(path, "is not a legacy .xls workbook", _rename_hint(head))
    try:
        return pc.CalamineWorkbook.from_path(str(path))
    except pc.PasswordError:
        raise _fail(path, "is password-protected", "remove the password in Excel") from None
    except Exception as exc:  # calamine raises several error types for a damaged file
        raise _fail(
            path,
            f"is a corrupt or unreadable workbook ({type(exc).__name__})",
            "open and re-save it",
        ) from None


def _rename_hint(head: bytes) -> str:
    if head.startswith(_ZIP):
        return "it is an .xlsx/.ods workbook: rename it accordingly"
    if head.startswith(_CFB):
        return "it is a legacy .xls workbook: rename it to .xls"
    return "if it is text, rename it to .csv"


def _sheet_rows(path: Path, name: str) -> Rows:
    try:
        sheet = _open_book(path).get_sheet_by_name(name)
        for index, values in enumerate(sheet.iter_rows()):
            yield index + 1, [cell_text(v) for v in values]
    except InputError:
        raise
    except Exception as exc:
        raise _fail(path, f"sheet {name!r} cannot be read ({type(exc).__name__})") from None


def _book_tables(path: Path, sheet: str) -> list[Table]:
    book = _open_book(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        meta = [(m.name, str(m.visible).rsplit(".", 1)[-1].lower()) for m in book.sheets_metadata]
    finally:
        book.close()
    names = [n for n, _ in meta]
    if sheet == "first":
        visible = [n for n, vis in meta if vis == "visible"]
        chosen = visible[:1] or names[:1]
    elif sheet == "*":
        chosen = names
    elif sheet in names:
        chosen = [sheet]
    else:
        raise _fail(path, f"has no sheet {sheet!r}", f"sheets: {', '.join(names)}")
    tables = []
    hidden = dict(meta)
    for name in chosen:
        if sheet == "*" and hidden[name] != "visible":
            tables.append(_skipped(path, kind, name, f"{hidden[name]} sheet"))
            continue
        header, header_row = None, 0
        for number, cells in _sheet_rows(path, name):
            if not _is_blank(cells):
                header, header_row = _header(cells), number
                break
        if header is None:
            tables.append(_skipped(path, kind, name, "empty sheet"))
            continue

        def rows(name: str = name, header_row: int = header_row, width: int = len(header)) -> Rows:
            for number, cells in _sheet_rows(path, name):
                if number > header_row and not _is_blank(cells):
                    yield number, _padded(cells, width)

        tables.append(Table(path, name, kind, None, None, header, header_row, rows))
    return tables


def _skipped(path: Path, kind: str, name: str, why: str) -> Table:
    return Table(path, name, kind, None, None, (), 0, lambda: iter(()), skipped=why)


def open_tables(path: Path, sheet: str = "first") -> list[Table]:
    """The tables of one source file (one for CSV, one per selected sheet), or InputError."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise _fail(path, "is a directory", "name the spreadsheet files in it")
    if suffix not in TEXT_EXTENSIONS | BOOK_EXTENSIONS:
        known = ", ".join(sorted(TEXT_EXTENSIONS | BOOK_EXTENSIONS))
        raise _fail(path, f"has an unknown extension {suffix or '(none)'!r}", f"use one of {known}")
    if not path.exists():
        raise _fail(path, "does not exist", "check the path")
    if not path.is_file():
        raise _fail(path, "is not a file")
    try:
        if suffix in TEXT_EXTENSIONS:
            return [_csv_table(path)]
        return _book_tables(path, sheet)
    except PermissionError:
        raise _fail(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc.strerror}") from None
