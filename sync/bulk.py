"""Build many instances of a frozen, slotted dataclass column-wise, without a Python call each.

`build(cls, count, columns)` gives the same objects as `list(map(cls, *columns))` (equal, same
repr and hash): every object is allocated with `cls.__new__` and each field is then set over the
whole column through its slot descriptor, so each step runs in C. Classes with `__post_init__`,
defaults computed by factories the columns do not cover, or without slots take the plain path.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable
from itertools import repeat, starmap
from typing import Any, TypeVar

_C = TypeVar("_C")


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _fields(cls: type) -> tuple[str, ...] | None:
    """The field names when the slot path is safe for `cls`, else None."""
    if cls not in _FIELDS:
        _FIELDS[cls] = _slot_fields(cls)
    return _FIELDS[cls]


def _slot_fields(cls: type) -> tuple[str, ...] | None:
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    names = tuple(f.name for f in dataclasses.fields(cls))
    if getattr(cls, "__slots__", None) != names:
        return None
    return names


def build(cls: type[_C], count: int, columns: Iterable[Iterable[Any]]) -> list[_C]:
    """`count` instances of `cls`; `columns` holds one finite iterable of `count` values per
    field, in field order (use `repeat(value, count)` for a constant)."""
    cols = list(columns)
    names = _fields(cls)
    if names is None or len(cols) != len(names):
        return list(map(cls, *cols))
    new: Any = cls.__new__
    objs: list[_C] = list(map(new, repeat(cls, count)))
    for name, column in zip(names, cols, strict=True):
        setter = getattr(cls, name).__set__
        # strict: a column of another length raises instead of leaving fields unset
        deque(starmap(setter, zip(objs, column, strict=True)), maxlen=0)
    return objs
