"""A small streaming XLSX writer: text and integer cells, a bold frozen header row, autofilter.

Why not openpyxl here: its write-only mode costs ~90 µs a row (measured: 12 columns), so a
report with a few hundred thousand rows needing attention took longer than the sync itself.
This writer produces the same SpreadsheetML parts with inline strings, in constant memory (each
sheet is deflated as it is written, into a temporary file, then copied into the zip), and is
read back by openpyxl in the tests. Strings are always written as text, never as formulas or
numbers.

Rows come one at a time (`Sheet.append`) or as a polars frame (`Sheet.extend_frame`), whose
cells' XML polars makes in native code, as `append` would, without holding the GIL; the
deflating (ISA-L, else zlib) runs without it too. So the report writes its workbook on a thread
beside its CSV and JSON writers. (It used to be made by a helper process rendering the XML in
Python: at a million report rows, 0.85 CPU-s of the 2.5 the reports took.)
"""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

import polars as pl

try:  # ISA-L's deflate: ~4x zlib's speed at level 1, files of the same size
    from isal import isal_zlib as _deflate
except ImportError:  # a platform without its wheel: the standard library's, the same format
    import zlib as _deflate  # type: ignore[no-redef]

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
    """Rows appended in order, deflated as they come (`Part`); `finish()` ends the XML."""

    def __init__(self, title: str, *, frozen_header: bool) -> None:
        self.title = title[:31]
        self.rows = 0
        self.width = 0
        self.frozen_header = frozen_header
        self.sealed = False  # its XML is in the zip already: no row may follow
        self._part = Part()
        self._waiting: list[pl.DataFrame] = []  # rows given, not rendered yet
        self._rendered = 0  # rows in the part
        self._part.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_NS_R}>'
            + (
                '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
                'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
                if frozen_header
                else ""
            )
            + "<sheetData>"
        )

    def _room_for(self, count: int) -> None:
        if self.sealed:
            raise ValueError(f"sheet {self.title!r} is sealed: no row may follow")
        if self.rows + count > MAX_ROWS:
            raise ValueError(f"sheet {self.title!r} is full ({MAX_ROWS} rows)")

    def append(self, values: Sequence[object], *, bold: bool = False) -> None:
        """One row: None and "" leave their cell out, an int is a number, anything else text
        (escaped, characters XML 1.0 forbids removed)."""
        self._room_for(1)
        self._render_waiting()
        self.rows += 1
        self._rendered += 1
        n = self.rows
        self.width = max(self.width, len(values))
        style = _BOLD if bold else _TEXT
        cells = []
        for i, v in enumerate(values):
            if v is None or v == "":
                continue
            col = _letter(i)
            if type(v) is int:
                cells.append(f'<c r="{col}{n}"><v>{v}</v></c>')
                continue
            s = str(v)
            if "&" in s or "<" in s or ">" in s:  # rare: skip the call to escape() otherwise
                s = escape(s)
            if _ILLEGAL.search(s):
                s = _ILLEGAL.sub("", s)
            t = _KEEP_SPACE if s[:1].isspace() or s[-1:].isspace() else _PLAIN
            cells.append(f'<c r="{col}{n}{style}{t}{s}</t></is></c>')
        self._part.write(f'<row r="{n}">{"".join(cells)}</row>')

    def extend(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.append(row)

    def extend_frame(self, frame: pl.DataFrame) -> None:
        """The frame's rows, as `append` would write them one by one (text and integer columns;
        a frame with others goes row by row), their XML made by polars `_ROWS_AT_ONCE` rows at a
        time: 100k rows of the report's twelve columns in ~0.3 s, against ~0.5 s a column at a
        time in Python and ~0.9 s row by row. Small frames wait (counted in `rows`) until
        enough rows make a block: polars' cost per call would otherwise dominate (a few
        hundred rows of a batch, as a report's drift rows come)."""
        self._room_for(frame.height)
        if not all(dtype == pl.String or dtype.is_integer() for dtype in frame.dtypes):
            self._render_waiting()
            self.extend(frame.iter_rows())
            return
        if frame.height:
            if self._waiting and frame.schema != self._waiting[0].schema:
                self._render_waiting()  # rendered as they are typed: not cast to one schema
            self._waiting.append(frame)
            self.rows += frame.height
            self.width = max(self.width, frame.width)
            if self.rows - self._rendered >= _ROWS_AT_ONCE:
                self._render_waiting()

    def _render_waiting(self) -> None:
        if not self._waiting:
            return
        frame = pl.concat(self._waiting, rechunk=False)
        self._waiting.clear()
        for at in range(0, frame.height, _ROWS_AT_ONCE):
            part = frame.slice(at, _ROWS_AT_ONCE)
            self._part.write(_rendered(part, self._rendered + 1))
            self._rendered += part.height

    def finish(self) -> Part:
        """End the sheet's XML (no row may follow) and give its part, ready for the zip."""
        self._render_waiting()
        ending = "</sheetData>"
        if self.frozen_header and self.rows:
            ending += f'<autoFilter ref="{self.filter_ref}"/>'
        self._part.write(ending + "</worksheet>")
        self.sealed = True
        return self._part.finish()

    def discard(self) -> None:
        """Drop the rows (the temporary file); the sheet takes no more."""
        self.sealed = True
        self._waiting.clear()
        self._part.close()

    @property
    def filter_ref(self) -> str:
        return f"A1:{column_letter(max(self.width, 1) - 1)}{max(self.rows, 1)}"


def _rendered(frame: pl.DataFrame, first: int) -> bytes:
    """The XML of the frame's rows, numbered from `first`, exactly as `Sheet.append` writes them,
    in two polars calls (three where a column has something to escape, remove or keep): what the
    text columns hold, then one expression per cell (checks that found nothing, the usual case,
    leave a step out) and the row joined with the cells that are not null (no cell). Few calls
    matter: each one gives up the GIL and waits to take it back, and this runs on a thread beside
    others that hold it."""
    texts = [j for j, dtype in enumerate(frame.dtypes) if dtype == pl.String]
    found = _facts(frame, texts, _text_facts)
    special = _facts(frame, [j for j in texts if found[j][2]], _special_facts)
    number = pl.int_range(first, first + frame.height, dtype=pl.Int64).cast(pl.String)
    row = [pl.lit('<row r="'), number, pl.lit('">')]
    for j, dtype in enumerate(frame.dtypes):
        col = pl.nth(j)
        open_cell = pl.lit(f'<c r="{_letter(j)}')
        if dtype != pl.String:
            row.append(pl.concat_str(open_cell, number, pl.lit('"><v>'), col, pl.lit("</v></c>")))
            continue
        any_written, all_written, _ = found[j]
        escape_chars, illegal, edge = special.get(j, (False, False, False))
        if not any_written:
            continue
        text = col
        if escape_chars:
            for char, entity in _ENTITIES:
                text = text.str.replace_all(char, entity, literal=True)
        if illegal:
            text = text.str.replace_all(_ILLEGAL_RE, "")
        opening = pl.lit(_PLAIN)
        if edge:  # then each cell's cleaned text
            opening = (
                pl.when(text.str.contains(_EDGE_SPACE)).then(pl.lit(_KEEP_SPACE)).otherwise(opening)
            )
        cell = pl.concat_str(open_cell, number, pl.lit(_TEXT), opening, text, pl.lit(_CLOSE))
        row.append(cell if all_written else pl.when(_written(col)).then(cell))
    row.append(pl.lit("</row>"))
    xml = pl.concat_str(row, ignore_nulls=True).str.join("").cast(pl.Binary)
    return frame.select(xml).item()  # type: ignore[no-any-return]


def _facts(
    frame: pl.DataFrame, columns: Sequence[int], facts: Callable[[pl.Expr], Sequence[pl.Expr]]
) -> dict[int, tuple[bool, ...]]:
    """These facts about each of these columns of the frame, in one polars call."""
    if not columns:
        return {}
    row = frame.select(
        fact.alias(f"{j}.{k}") for j in columns for k, fact in enumerate(facts(pl.nth(j)))
    ).row(0)
    n = len(row) // len(columns)
    return {j: row[n * k : n * k + n] for k, j in enumerate(columns)}


def _written(col: pl.Expr) -> pl.Expr:
    """Which cells of a text column get a cell in the XML: None and "" get none."""
    return col.str.len_bytes().fill_null(0) > 0


def _text_facts(col: pl.Expr) -> Sequence[pl.Expr]:
    """Whether any cell of a text column is written, whether all are, and whether any has a
    character to escape or remove, or may start or end with a space (then `_special_facts`:
    one regex scans a column that has none of them, the usual case)."""
    written = _written(col)
    return written.any(), written.all(), col.str.contains(_SPECIAL).any()


def _special_facts(col: pl.Expr) -> Sequence[pl.Expr]:
    """For a column `_text_facts` found special: whether any cell needs escaping, has
    characters to remove, or may start or end with a space once cleaned."""
    return (
        col.str.contains("[&<>]").any(),
        col.str.contains(_ILLEGAL_RE).any(),
        col.str.contains(_MAY_EDGE_SPACE).any(),
    )


_ROWS_AT_ONCE = 4096  # rows `Sheet.extend_frame` renders at a time (~3 MB of XML; larger blocks
# left polars' allocator holding more: report.xlsx at 1M records peaked 28 MB higher at 8,192)
_LETTERS = [column_letter(i) for i in range(64)]


def _letter(index: int) -> str:
    """`column_letter`, looked up for the first 64 columns."""
    return _LETTERS[index] if index < len(_LETTERS) else column_letter(index)


_TEXT = '" t="inlineStr" s="2"><is>'
_BOLD = '" t="inlineStr" s="1"><is>'
# a text's leading or trailing space is kept only when the XML says so (as openpyxl and
# XlsxWriter write it; the same test both ways: `isspace` and, in polars, Unicode White_Space)
_PLAIN = "<t>"
_KEEP_SPACE = '<t xml:space="preserve">'
_CLOSE = "</t></is></c>"
_EDGE_SPACE = r"^\s|\s$"
_ILLEGAL_CHARS = r"\x00-\x08\x0B\x0C\x0E-\x1F\x{FFFE}\x{FFFF}"
_ILLEGAL_RE = f"[{_ILLEGAL_CHARS}]"  # `_ILLEGAL`, for polars
_MAY_EDGE_SPACE = rf"^[\s{_ILLEGAL_CHARS}]|[\s{_ILLEGAL_CHARS}]$"  # once removed, a space?
_SPECIAL = f"[&<>{_ILLEGAL_CHARS}]|{_MAY_EDGE_SPACE}"  # any of the three
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))  # `escape`'s order: & first


class Part:
    """One file of the zip, deflated as it is written, into a temporary file (at a million
    report rows a sheet is ~60 MB of XML, ~7 MB deflated), with the CRC-32 and the sizes the
    zip's headers need. Small writes are joined before they are deflated."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.crc = 0
        self.size = 0  # bytes written
        self.compressed = 0  # bytes in `file`, once finished
        self._deflate = _deflate.compressobj(_LEVEL, _deflate.DEFLATED, -15)  # raw, as zip has
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._pending.append(raw)
        self._pending_size += len(raw)
        if self._pending_size >= _JOINED:
            self._deflate_pending()

    def _deflate_pending(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self.crc = _deflate.crc32(data, self.crc)
        self.size += len(data)
        self.file.write(self._deflate.compress(data))

    def finish(self) -> Part:
        """The last bytes deflated; `file` is then read from its start."""
        self._deflate_pending()
        self.file.write(self._deflate.flush())
        self.compressed = self.file.tell()
        self.file.seek(0)
        return self

    def close(self) -> None:
        self.file.close()


_LEVEL = 1  # deflate's fastest level: XML this repetitive shrinks ~9x even so
_JOINED = 1 << 20  # small writes wait until this many bytes are pending
_ZIP64 = 0xFFFFFFFF  # a size or offset this large is written in a Zip64 field instead
_FULL = 0xFFFFFFFF  # what the classic field then holds
_NO_ZIP64 = 20  # the zip version a reader needs: 2.0 (deflate), 4.5 with Zip64 fields
_WITH_ZIP64 = 45


class _Zip:
    """A zip written front to back from parts deflated beforehand (the standard library's
    zipfile deflates what it is given itself): for each part a local header and the data, then
    the central directory; Zip64 fields (APPNOTE 4.5.3) where a size, an offset or the count
    needs them."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")
        self._entries: list[tuple[bytes, int, int, int, int]] = []  # name, crc, sizes, offset
        now = time.localtime()
        self._time = now.tm_hour << 11 | now.tm_min << 5 | now.tm_sec // 2
        self._date = max(now.tm_year - 1980, 0) << 9 | now.tm_mon << 5 | now.tm_mday

    def add(self, name: str, part: Part) -> None:
        raw, offset = name.encode(), self._fh.tell()
        big = part.size >= _ZIP64 or part.compressed >= _ZIP64
        extra = struct.pack("<HHQQ", 1, 16, part.size, part.compressed) if big else b""
        self._fh.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                _WITH_ZIP64 if big else _NO_ZIP64,
                0,  # flags
                8,  # deflated
                self._time,
                self._date,
                part.crc,
                _FULL if big else part.compressed,
                _FULL if big else part.size,
                len(raw),
                len(extra),
            )
            + raw
            + extra
        )
        shutil.copyfileobj(part.file, self._fh, 1 << 20)
        part.close()
        self._entries.append((raw, part.crc, part.size, part.compressed, offset))

    def close(self) -> None:
        """Write the central directory and close the file."""
        start = self._fh.tell()
        for raw, crc, size, compressed, offset in self._entries:
            large = [v for v in (size, compressed, offset) if v >= _ZIP64]  # APPNOTE's order
            extra = struct.pack(f"<HH{len(large)}Q", 1, 8 * len(large), *large) if large else b""
            version = _WITH_ZIP64 if large else _NO_ZIP64
            self._fh.write(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    version,  # made by (MS-DOS attributes)
                    version,  # needed
                    0,
                    8,
                    self._time,
                    self._date,
                    crc,
                    _FULL if compressed >= _ZIP64 else compressed,
                    _FULL if size >= _ZIP64 else size,
                    len(raw),
                    len(extra),
                    0,  # comment
                    0,  # disk
                    0,  # internal attributes
                    0,  # external attributes
                    _FULL if offset >= _ZIP64 else offset,
                )
                + raw
                + extra
            )
        end = self._fh.tell()
        count, length = len(self._entries), end - start
        zip64 = count >= 0xFFFF or start >= _ZIP64 or length >= _ZIP64
        if zip64:
            self._fh.write(
                struct.pack(
                    "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, length, start
                )
                + struct.pack("<IIQI", 0x07064B50, 0, end, 1)
            )
        self._fh.write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                0xFFFF if zip64 else count,
                0xFFFF if zip64 else count,
                _FULL if zip64 else length,
                _FULL if zip64 else start,
                0,
            )
        )
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()


class Workbook:
    """Sheets in the order they are added; `save(path)` writes the zip. `open(path)` starts the
    zip early, so that `seal(i)` can put a finished sheet into it while rows still come for the
    others (the order of a zip's parts does not matter to a reader)."""

    def __init__(self) -> None:
        self.sheets: list[Sheet] = []
        self._zip: _Zip | None = None

    def add_sheet(self, title: str, *, frozen_header: bool = True) -> Sheet:
        sheet = Sheet(title, frozen_header=frozen_header)
        self.sheets.append(sheet)
        return sheet

    def open(self, path: Path) -> None:
        self._zip = _Zip(path)

    def seal(self, index: int) -> None:
        """Put sheet `index` (finished: no row may follow) into the zip now."""
        if self._zip is None:
            raise ValueError("seal() needs open(path) first")
        self._put_sheet(self._zip, index)

    def _put_sheet(self, zf: _Zip, index: int) -> None:
        if not self.sheets[index].sealed:
            zf.add(f"xl/worksheets/sheet{index + 1}.xml", self.sheets[index].finish())

    def abort(self) -> None:
        """Close the zip, if open, without finishing it (its file is about to be removed), and
        drop the sheets' rows."""
        if self._zip is not None:
            self._zip.abort()
            self._zip = None
        for sheet in self.sheets:
            sheet.discard()

    def save(self, path: Path) -> None:
        if self._zip is None:
            self.open(path)
        assert self._zip is not None
        n = len(self.sheets)
        sheets = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        styles = f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        book = f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        parts = {
            "[Content_Types].xml": self._content_types(),
            "_rels/.rels": _relationships(book),
            "xl/workbook.xml": self._workbook(),
            "xl/_rels/workbook.xml.rels": _relationships(sheets + styles),
            "xl/styles.xml": _STYLES,
        }
        for name, text in parts.items():
            part = Part()
            part.write(text)
            self._zip.add(name, part.finish())
        for i in range(n):
            self._put_sheet(self._zip, i)
        self._zip.close()
        self._zip = None

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


def _relationships(inner: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
        f'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{inner}'
        "</Relationships>"
    )


def _quoted(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _absolute(ref: str) -> str:
    return ":".join("$" + re.sub(r"(\d+)", r"$\1", part) for part in ref.split(":"))
