"""Rows held column-wise: a sequence of frozen dataclass rows that makes a row only when asked.

A million-row run moves its rows from stage to stage mostly to read a few fields of each: the
plan's new contacts go from the ingest snapshot to plan.json and the reports without anyone
looking at one of them as an object. A `Table` keeps one list per field and is a `Sequence` of
rows (equal to the objects `cls(*fields)` would give), so the stages keep their typed API while
the hot paths read whole columns: `column(rows, "phone")` works on a Table and on any sequence
of objects alike, as do `take` and `concat`.

A field may itself be a Table (an entry's origin: file, sheet and row), and a Table built with
`optional=FIELD` gives None for a row whose FIELD is None (a remote-only entry has no origin).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import fields
from itertools import compress
from operator import attrgetter
from typing import Any, Generic, TypeVar, overload

from sync.bulk import build

R = TypeVar("R", covariant=True)
_BATCH = 50_000  # rows made at a time when a Table is iterated


class Table(Sequence[R], Generic[R]):
    """Rows of `cls` as one sequence per field (every field of `cls`, in field order)."""

    __slots__ = ("cls", "columns", "optional")

    def __init__(
        self,
        cls: Callable[..., Any],
        columns: Mapping[str, Sequence[Any]],
        *,
        optional: str | None = None,
    ) -> None:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if sorted(columns) != sorted(names):
            raise ValueError(
                f"a {cls.__name__} table needs the columns {names}, not {list(columns)}"
            )
        if len({len(c) for c in columns.values()}) > 1:
            raise ValueError(f"the columns of a {cls.__name__} table differ in length")
        if optional is not None and optional not in names:
            raise ValueError(f"{optional!r} is not a field of {cls.__name__}")
        self.cls = cls
        self.columns = {n: columns[n] for n in names}
        self.optional = optional

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    @overload
    def __getitem__(self, index: int) -> R: ...
    @overload
    def __getitem__(self, index: slice) -> Table[R]: ...
    def __getitem__(self, index: int | slice) -> R | Table[R]:
        if isinstance(index, slice):
            cut = {n: c[index] for n, c in self.columns.items()}
            return Table(self.cls, cut, optional=self.optional)
        if self.optional is not None and self.columns[self.optional][index] is None:
            return None  # type: ignore[return-value]
        return self.cls(*(c[index] for c in self.columns.values()))  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[R]:
        for at in range(0, len(self), _BATCH):
            yield from self._rows(at, at + _BATCH)

    def _rows(self, start: int, stop: int) -> list[R]:
        cols = [c[start:stop] for c in self.columns.values()]
        cols = [list(c) if isinstance(c, Table) else c for c in cols]
        if self.optional is None:
            return build(self.cls, len(cols[0]), cols)  # type: ignore[arg-type]
        at = list(self.columns).index(self.optional)
        rows: list[Any] = [None if v[at] is None else self.cls(*v) for v in zip(*cols, strict=True)]
        return rows

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Table({self.cls.__name__}, {len(self)} rows)"


def all_equal(values: Sequence[Any]) -> bool:
    """Whether there are values and every one equals the first (three probes before the full
    count: most columns differ early)."""
    if not values:
        return False
    first = values[0]
    return (
        values[-1] == first
        and values[len(values) // 2] == first
        and values.count(first) == len(values)
    )


def each(fn: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """`list(map(fn, values))`, with `fn` called once for a column of one value (most report
    columns, batch by batch: the file, the sheet, the action, the groups). `fn` must give equal
    results for equal values."""
    if all_equal(values):
        return [fn(values[0])] * len(values)
    return list(map(fn, values))


def column(rows: Sequence[Any], name: str) -> Sequence[Any]:
    """One field of every row: a Table's own column, else read off each object."""
    if isinstance(rows, Table):
        return rows.columns[name]
    return list(map(attrgetter(name), rows))


def take(rows: Sequence[Any], at: Sequence[int]) -> Sequence[Any]:
    """The rows at these positions, in this order (a Table stays a Table)."""
    if isinstance(rows, Table):
        cols = {n: take(c, at) for n, c in rows.columns.items()}
        return Table(rows.cls, cols, optional=rows.optional)
    return list(map(rows.__getitem__, at))


def where(rows: Sequence[Any], keep: Sequence[bool]) -> Sequence[Any]:
    """The rows whose `keep` is true, in order (a Table stays a Table)."""
    if isinstance(rows, Table):
        cols = {n: where(c, keep) for n, c in rows.columns.items()}
        return Table(rows.cls, cols, optional=rows.optional)
    return list(compress(rows, keep))


def concat(
    first: Sequence[Any], second: Sequence[Any], *, extend: Collection[str] = ()
) -> Sequence[Any]:
    """`first` then `second`: a Table when `first` is one (`second` then holds objects or is a
    Table of the same rows), else a list. `extend`: columns of `first` that are lists its caller
    made and owns, extended in place rather than copied (a million-row copy touches a million
    objects)."""
    if not isinstance(first, Table):
        return [*first, *second]
    cols: dict[str, Sequence[Any]] = {}
    for n, c in first.columns.items():
        more = _column_of(second, n, c)
        if n in extend and isinstance(c, list):
            c.extend(more)
            cols[n] = c
        else:
            cols[n] = concat(c, more)
    return Table(first.cls, cols, optional=first.optional)


def _column_of(rows: Sequence[Any], name: str, like: Sequence[Any]) -> Sequence[Any]:
    """Column `name` of `rows`, shaped like `like` (a nested Table gets a Table)."""
    values = column(rows, name)
    if isinstance(like, Table) and not isinstance(values, Table):
        if like.optional is None:
            return Table(like.cls, {n: column(values, n) for n in like.columns})
        present = [v is not None for v in values]
        cols = {
            n: [getattr(v, n) if p else None for v, p in zip(values, present, strict=True)]
            for n in like.columns
        }
        return Table(like.cls, cols, optional=like.optional)
    return values
