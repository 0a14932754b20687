"""sync.bulk builds the same dataclass instances as calling the class, or refuses."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import pytest

from sync.bulk import build
from sync.models import DesiredContact, Origin


def test_build_equals_the_constructor() -> None:
    rows = range(1, 6)
    built = build(Origin, 5, [repeat("a.csv", 5), ["S", None, "S", None, "S"], rows])
    plain = [Origin("a.csv", s, r) for s, r in zip(["S", None, "S", None, "S"], rows, strict=True)]
    assert built == plain
    assert [repr(o) for o in built] == [repr(o) for o in plain]
    assert [hash(o) for o in built] == [hash(o) for o in plain]
    columns: list[list[object]] = [["+923001234567"], ["Ali Khan"], [("VIP",)], list(built[:1])]
    columns += [["0300 1234567"], ["mobile"], [None], [()], [("note",)]]
    c = build(DesiredContact, 1, columns)
    assert c == [
        DesiredContact(
            "+923001234567",
            "Ali Khan",
            ("VIP",),
            built[0],
            "0300 1234567",
            "mobile",
            None,
            (),
            ("note",),
        )
    ]


def test_build_refuses_a_short_column() -> None:
    with pytest.raises(ValueError, match="shorter"):
        build(Origin, 3, [["a"], repeat(None, 3), range(3)])


def test_build_calls_post_init() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    assert build(Checked, 2, [[1, 2]]) == [Checked(1), Checked(2)]
    with pytest.raises(ValueError, match="negative"):
        build(Checked, 1, [[-1]])
