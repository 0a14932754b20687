"""Typed values that travel between stages. No DataFrame crosses a stage boundary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sync.table import column, where


@dataclass(frozen=True, slots=True)
class RemoteContact:
    """A contact as listed by get/contacts; `name` is already HTML-unescaped."""

    id: int
    phone: str
    name: str
    groups: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RemoteGroup:
    id: int
    name: str  # HTML-unescaped


@dataclass(frozen=True, slots=True)
class OptOut:
    id: int
    phone: str
    created: int


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a row came from: file, sheet (None for CSV) and the row number the user sees."""

    file: str
    sheet: str | None
    row: int

    def __str__(self) -> str:
        return origin_text(self.file, self.sheet, self.row)


def origin_text(file: str, sheet: str | None, row: int) -> str:
    """How an origin is shown: `file:row`, or `file[sheet]:row` (`str(Origin(...))`)."""
    return f"{file}[{sheet}]:{row}" if sheet else f"{file}:{row}"


@dataclass(frozen=True, slots=True)
class DesiredContact:
    """One valid contact the sources ask for; the key is `phone` (E.164)."""

    phone: str
    name: str
    groups: tuple[str, ...]  # group names or ids exactly as the source/mapping gave them
    origin: Origin
    raw_phone: str
    number_type: str = "unknown"  # mobile, fixed_line, fixed_line_or_mobile, voip, ...
    extension: str | None = None
    duplicates: tuple[Origin, ...] = ()  # other rows with the same phone, merged into this one
    notes: tuple[str, ...] = ()  # what ingest did: extension dropped, name fallback used, ...


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A source row that does not become a contact of its own: invalid, or a duplicate."""

    origin: Origin
    kind: str  # "invalid" | "duplicate"
    reason: str
    raw_phone: str
    name: str
    phone: str | None = None  # E.164 when it parsed (duplicates)
    winner: Origin | None = None  # for duplicates: the row that won
    columns: dict[str, str] = field(default_factory=dict)  # the original cells, for rejected.csv


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What was read from one file or sheet, and how."""

    path: str
    sheet: str | None
    kind: str  # csv | xlsx | xlsm | xls | ods
    encoding: str | None
    delimiter: str | None
    columns: tuple[str, ...]  # the header as found
    roles: tuple[tuple[str, str], ...]  # (column, what it maps to; "-" when unused)
    rows: int  # non-blank data rows
    skipped: str | None = None  # why the sheet was not read


@dataclass(frozen=True, slots=True)
class IngestResult:
    contacts: Sequence[DesiredContact]  # one per E.164, groups merged (a Table from a snapshot)
    issues: Sequence[RowIssue]  # invalid rows (in file order), then duplicate rows
    rows_read: int  # non-blank data rows over all files and sheets
    sources: tuple[SourceInfo, ...]

    @property
    def invalid(self) -> Sequence[RowIssue]:
        return self._of_kind("invalid")

    @property
    def duplicates(self) -> Sequence[RowIssue]:
        return self._of_kind("duplicate")

    def _of_kind(self, kind: str) -> Sequence[RowIssue]:
        """The issues of this kind, in order, picked column-wise (a Table stays a Table)."""
        return where(self.issues, list(map(kind.__eq__, column(self.issues, "kind"))))
