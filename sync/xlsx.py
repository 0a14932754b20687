"""A small streaming XLSX writer: text and integer cells, a bold frozen header row, autofilter.

Why not openpyxl here: its write-only mode costs ~90 µs a row (measured: 12 columns), so a
report with a few hundred thousand rows needing attention took longer than the sync itself.
This writer produces the same SpreadsheetML parts with inline strings at a few µs a row, in
constant memory (each sheet streams to a temporary file, then into the zip), and is read back by
openpyxl in the tests. Strings are always written as text, never as formulas or numbers.

`WorkbookProcess` is the same workbook made by a helper process (this file run as a script, so
it needs nothing but the standard library): the report hands it the rows and goes on with its
CSV and JSON while the XML is made on another core.
"""

from __future__ import annotations

import contextlib
import marshal
import re
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final
from xml.sax.saxutils import escape, quoteattr

MAX_ROWS = 1_048_576  # Excel's limit per sheet
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
# style 0: default; 1: bold text (header); 2: text (numFmt 49 "@": phones stay text)
_STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet {_NS}>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="49" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" '
    'applyNumberFormat="1"/>'
    '<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
    "</cellStyles></styleSheet>"
)


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


class Sheet:
    """Rows appended in order to a temporary file; `close()` finishes the XML."""

    def __init__(self, title: str, *, frozen_header: bool) -> None:
        self.title = title[:31]
        self.rows = 0
        self.width = 0
        self.frozen_header = frozen_header
        self.sealed = False  # its XML is in the zip already: no row may follow
        self._fh: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115

    def append(self, values: Sequence[object], *, bold: bool = False) -> None:
        if self.sealed:
            raise ValueError(f"sheet {self.title!r} is sealed: no row may follow")
        if self.rows >= MAX_ROWS:
            raise ValueError(f"sheet {self.title!r} is full ({MAX_ROWS} rows)")
        self.rows += 1
        n = self.rows
        self.width = max(self.width, len(values))
        text = _BOLD if bold else _TEXT
        cells = []
        for i, v in enumerate(values):
            if v is None or v == "":
                continue
            col = _LETTERS[i] if i < len(_LETTERS) else column_letter(i)
            if type(v) is int:
                cells.append(f'<c r="{col}{n}"><v>{v}</v></c>')
                continue
            s = str(v)
            if "&" in s or "<" in s or ">" in s:  # rare: skip the call to escape() otherwise
                s = escape(s)
            cells.append(f'<c r="{col}{n}{text}{s}</t></is></c>')
        row = "".join(cells)
        if _ILLEGAL.search(row):  # one search per row: control characters are rare
            row = _ILLEGAL.sub("", row)
        self._fh.write(f'<row r="{n}">{row}</row>')

    def extend(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.append(row)

    def extend_columns(self, columns: Sequence[Sequence[object]]) -> None:
        """Append rows given column-wise (one sequence per column, all of one length): the same
        XML as `append` row by row, made a column at a time (one f-string per cell, the escaping
        and cleaning checks once per column, no work for a column without cells): 100k invalid
        rows as report.xlsx has them took 0.54 s row by row, 0.34 s so. A few thousand rows at
        a time: their cells, held at once, would otherwise be ~1 KB a row."""
        count = len(columns[0]) if columns else 0
        if len({len(c) for c in columns}) > 1:
            self.extend(zip(*columns, strict=True))  # says what is wrong
            return
        for at in range(0, count, _ROWS_AT_ONCE):
            self._extend([c[at : at + _ROWS_AT_ONCE] for c in columns])

    def _extend(self, columns: Sequence[Sequence[object]]) -> None:
        count = len(columns[0])
        first = self.rows + 1
        cells = [_column_cells(j, col, first) for j, col in enumerate(columns)]
        if self.sealed or first + count - 1 > MAX_ROWS or any(c is None for c in cells):
            self.extend(zip(*columns, strict=True))  # says what is wrong, or takes odd values
            return
        numbers = range(first, first + count)
        written = [c for c in cells if c]  # [] for a column without a cell
        if not written:
            written = [[""] * count]
        self._fh.write(
            "".join(
                f'<row r="{n}">{"".join(row)}</row>'
                for n, row in zip(numbers, zip(*written, strict=True), strict=True)
            )
        )
        self.rows += count
        self.width = max(self.width, len(columns))

    def xml_parts(self) -> Iterable[str]:
        yield f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_NS_R}>'
        if self.frozen_header:
            yield (
                '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
                'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
            )
        yield "<sheetData>"
        self._fh.seek(0)
        while chunk := self._fh.read(1 << 20):
            yield chunk
        yield "</sheetData>"
        if self.frozen_header and self.rows:
            yield f'<autoFilter ref="{self.filter_ref}"/>'
        yield "</worksheet>"
        self._fh.close()

    @property
    def filter_ref(self) -> str:
        return f"A1:{column_letter(max(self.width, 1) - 1)}{max(self.rows, 1)}"


def _column_cells(j: int, values: Sequence[object], first: int) -> list[str] | None:
    """The cells of column `j` for rows `first`, `first + 1`, ... ("" where `append` writes none;
    [] when it writes none in the whole column), or None for a column `append` must take (values
    other than text, integers and None)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    col = _LETTERS[j] if j < len(_LETTERS) else column_letter(j)
    numbers = range(first, first + len(values))
    if not kinds:
        return []  # all None: no cell
    if kinds <= {int}:
        return [
            "" if v is None else f'<c r="{col}{n}"><v>{v}</v></c>'
            for n, v in zip(numbers, values, strict=True)
        ]
    if kinds != {str}:
        return None
    texts: Sequence[str | None] = values  # type: ignore[assignment]
    joined = "".join(filter(None, texts))
    if not joined and not any(texts):
        return []  # no cell in this column (often: a sheet's rows leave some fields empty)
    if "&" in joined or "<" in joined or ">" in joined:
        texts = [escape(v) if v and ("&" in v or "<" in v or ">" in v) else v for v in texts]
    if _ILLEGAL.search(joined):
        texts = [_ILLEGAL.sub("", v) if v else v for v in texts]
    # a cell is written when its value is not empty, even if cleaning empties its text
    return [
        f'<c r="{col}{n}{_TEXT}{t}</t></is></c>' if v else ""
        for n, t, v in zip(numbers, texts, values, strict=True)
    ]


_ROWS_AT_ONCE = 4096  # rows `Sheet.extend_columns` renders at a time
_LETTERS = [column_letter(i) for i in range(64)]
_TEXT = '" t="inlineStr" s="2"><is><t xml:space="preserve">'
_BOLD = '" t="inlineStr" s="1"><is><t xml:space="preserve">'


class Workbook:
    """Sheets in the order they are added; `save(path)` writes the zip. `open(path)` starts the
    zip early, so that `seal(i)` can compress a finished sheet into it while rows still come
    for the others (the order of a zip's parts does not matter to a reader)."""

    def __init__(self) -> None:
        self.sheets: list[Sheet] = []
        self._zip: zipfile.ZipFile | None = None

    def add_sheet(self, title: str, *, frozen_header: bool = True) -> Sheet:
        sheet = Sheet(title, frozen_header=frozen_header)
        self.sheets.append(sheet)
        return sheet

    def open(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)

    def seal(self, index: int) -> None:
        """Compress sheet `index` (finished: no row may follow) into the zip now."""
        if self._zip is None:
            raise ValueError("seal() needs open(path) first")
        sheet = self.sheets[index]
        if not sheet.sealed:
            sheet.sealed = True
            self._write_sheet(self._zip, index)

    def abort(self) -> None:
        """Close the zip, if open, without finishing it (its file is about to be removed)."""
        if self._zip is not None:
            with contextlib.suppress(Exception):  # an entry left open, a closed file: moot
                self._zip.close()
            self._zip = None

    def _write_sheet(self, zf: zipfile.ZipFile, index: int) -> None:
        with zf.open(f"xl/worksheets/sheet{index + 1}.xml", "w", force_zip64=True) as out:
            for part in self.sheets[index].xml_parts():
                out.write(part.encode("utf-8"))

    def save(self, path: Path) -> None:
        if self._zip is None:
            self.open(path)
        assert self._zip is not None
        n = len(self.sheets)
        with self._zip as zf:
            zf.writestr("[Content_Types].xml", self._content_types())
            zf.writestr(
                "_rels/.rels",
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
                f'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
                "</Relationships>",
            )
            zf.writestr("xl/workbook.xml", self._workbook())
            rels = "".join(
                f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" '
                f'Target="worksheets/sheet{i}.xml"/>'
                for i in range(1, n + 1)
            )
            zf.writestr(
                "xl/_rels/workbook.xml.rels",
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
                f'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
                f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
                "</Relationships>",
            )
            zf.writestr("xl/styles.xml", _STYLES)
            for i, sheet in enumerate(self.sheets):
                if not sheet.sealed:
                    sheet.sealed = True
                    self._write_sheet(zf, i)

    def _content_types(self) -> str:
        sheets = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_CT}.worksheet+xml"/>'
            for i in range(1, len(self.sheets) + 1)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types '
            'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
            f"{sheets}</Types>"
        )

    def _workbook(self) -> str:
        sheets = "".join(
            f'<sheet name={quoteattr(s.title)} sheetId="{i}" r:id="rId{i}"/>'
            for i, s in enumerate(self.sheets, 1)
        )
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"{escape(_quoted(s.title))}!{_absolute(s.filter_ref)}</definedName>"
            for i, s in enumerate(self.sheets)
            if s.frozen_header and s.rows
        )
        defined = f"<definedNames>{names}</definedNames>" if names else ""
        return (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook {_NS} {_NS_R}>'
            f"<bookViews><workbookView/></bookViews><sheets>{sheets}</sheets>{defined}</workbook>"
        )


def _quoted(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _absolute(ref: str) -> str:
    return ":".join("$" + re.sub(r"(\d+)", r"$\1", part) for part in ref.split(":"))


# -- the same workbook, written by a helper process --------------------------------------------


def _frame(payload: Any) -> bytes:
    data = marshal.dumps(payload)
    return len(data).to_bytes(8, "little") + data


def _read_frame(inp: IO[bytes]) -> tuple[Any, ...] | None:
    head = inp.read(8)
    if len(head) < 8:
        return None
    message = marshal.loads(inp.read(int.from_bytes(head, "little")))  # noqa: S302 - our parent
    if not isinstance(message, tuple) or not message:
        raise ValueError("not a message of this protocol")
    return message


class SheetProxy:
    """A `Sheet` of a `WorkbookProcess`: rows are counted here and sent in batches."""

    def __init__(self, book: WorkbookProcess, index: int) -> None:
        self._book, self._index = book, index
        self.rows = 0
        self._pending: list[Sequence[object]] = []

    def append(self, values: Sequence[object], *, bold: bool = False) -> None:
        if self.rows >= MAX_ROWS:
            raise ValueError(f"sheet {self._index} is full ({MAX_ROWS} rows)")
        self.rows += 1
        if bold:
            self.flush()
            self._book.send(("rows", self._index, True, [tuple(values)]))
            return
        self._pending.append(tuple(values))
        if len(self._pending) >= 5_000:
            self.flush()

    def extend_columns(self, columns: Sequence[Sequence[object]]) -> None:
        count = len(columns[0]) if columns else 0
        if self.rows + count > MAX_ROWS:
            raise ValueError(f"sheet {self._index} is full ({MAX_ROWS} rows)")
        self.flush()
        self.rows += count
        # sent (marshalled) at once: lists and tuples go as they are
        cols = [c if isinstance(c, list | tuple) else list(c) for c in columns]
        self._book.send(("columns", self._index, cols))

    def flush(self) -> None:
        if self._pending:
            self._book.send(("rows", self._index, False, self._pending))
            self._pending = []


class WorkbookProcess:
    """`Workbook`, rendered and zipped by a helper process (this file run as a script): the XML of
    every cell is made on another core while the caller goes on with its own work. Rows travel
    over a pipe in marshal batches, written by a thread of this process from a queue of at most
    `BUDGET` bytes, so the caller does not wait whenever the helper is busy with an earlier batch.
    `start()` gives None when no helper can be started."""

    BUDGET: Final = 64 << 20  # bytes of batches waiting for the pipe (one larger batch may wait)

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self.sheets: list[SheetProxy] = []
        self._reaped: bytes | None = None
        self._why = ""
        self._frames: deque[bytes | None] = deque()
        self._pending = 0  # bytes in _frames
        self._ready = threading.Condition()
        self._failed: BaseException | None = None
        self._pump = threading.Thread(target=self._write_frames, name="xlsx-pipe", daemon=True)
        self._pump.start()

    @classmethod
    def start(cls) -> WorkbookProcess | None:
        try:
            proc = subprocess.Popen(  # noqa: S603 - our interpreter running this very file
                # this file as a script, isolated (-I: no script directory on sys.path, no
                # user site): it needs only the standard library, not the sync package
                [sys.executable, "-I", str(Path(__file__).resolve())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,  # nothing left in a buffer for a later close() to write (SIGPIPE)
            )
        except OSError:
            return None
        return cls(proc)

    def add_sheet(self, title: str, *, frozen_header: bool = True) -> SheetProxy:
        self.send(("sheet", title, frozen_header))
        sheet = SheetProxy(self, len(self.sheets))
        self.sheets.append(sheet)
        return sheet

    def send(self, message: tuple[object, ...]) -> None:
        self._put(_frame(message))
        if self._failed is not None:
            self.abort()
            raise OSError(f"the report.xlsx writer stopped: {self._why}") from self._failed

    def _put(self, frame: bytes | None) -> None:
        size = len(frame) if frame is not None else 0
        with self._ready:
            while self._pending and self._pending + size > self.BUDGET and self._failed is None:
                if not self._pump.is_alive():  # it cannot end without None: never hang on it
                    self._failed = RuntimeError("the report.xlsx pipe thread ended")
                    break
                self._ready.wait(timeout=1.0)
            self._frames.append(frame)
            self._pending += size
            self._ready.notify_all()

    def _write_frames(self) -> None:
        """The thread: frames into the pipe, in order, until None. After a failed write it
        only empties the queue (the caller sees `_failed` at its next send)."""
        assert self._proc.stdin is not None
        if hasattr(signal, "pthread_sigmask"):
            # a helper that died makes the next write fail with EPIPE, here, whatever SIGPIPE's
            # action in the host program (its default would kill the whole process unannounced)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
        while True:
            with self._ready:
                while not self._frames:
                    self._ready.wait()
                frame = self._frames.popleft()
            if frame is None:
                return
            if self._failed is None:
                try:
                    view = memoryview(frame)
                    while view:  # an unbuffered write may take part of it
                        sent = self._proc.stdin.write(view)
                        if sent is None:  # only a non-blocking pipe says "try again"
                            raise BlockingIOError("the report.xlsx pipe would block")
                        view = view[sent:]
                except BaseException as exc:  # any failure: handed to the caller at its next send
                    self._failed = exc
            with self._ready:
                self._pending -= len(frame)
                self._ready.notify_all()

    def _stop_pump(self) -> None:
        """Let the thread write what is queued, then end it."""
        if self._pump.is_alive():
            self._put(None)
            self._pump.join()

    def open(self, path: Path) -> None:
        self.send(("open", str(path)))

    def seal(self, index: int) -> None:
        self.sheets[index].flush()
        self.send(("seal", index))

    def save(self, path: Path) -> None:
        for sheet in self.sheets:
            sheet.flush()
        self.send(("save", str(path)))
        self._stop_pump()
        out = self._reap()
        if self._failed is not None or self._proc.returncode != 0 or out != b"saved":
            raise OSError(f"the report.xlsx writer failed: {self._why}")

    def abort(self) -> None:
        """Stop the helper (nothing saved) if it still runs; its pipes are closed either way."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._stop_pump()  # writes to a killed helper fail at once: the thread empties the queue
        self._reap()

    def _reap(self) -> bytes:
        """Wait for the helper, closing the pipes (once); what it printed."""
        if self._reaped is None:
            try:
                out, err = self._proc.communicate()
            except (OSError, ValueError):
                out, err = b"", b""
            self._reaped = out or b""
            lines = (err or b"").decode("utf-8", "replace").strip().splitlines()
            self._why = lines[-1] if lines else f"exit code {self._proc.returncode}"
        return self._reaped


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The helper's side: build the workbook from the messages, save it, say "saved"."""
    book = Workbook()
    while (message := _read_frame(inp)) is not None:
        kind, args = message[0], message[1:]
        if kind == "sheet":
            book.add_sheet(args[0], frozen_header=args[1])
        elif kind == "rows":
            sheet, bold = book.sheets[args[0]], args[1]
            for values in args[2]:
                sheet.append(values, bold=bold)
        elif kind == "columns":
            book.sheets[args[0]].extend_columns(args[1])
        elif kind == "open":
            book.open(Path(args[0]))
        elif kind == "seal":
            book.seal(args[0])
        elif kind == "save":
            book.save(Path(args[0]))
            out.write(b"saved")
            return
        else:
            raise ValueError(f"unknown message {kind!r}")


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
