"""Rows held column-wise (sync.table): a Table is the sequence of objects it stands for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.models import DesiredContact, Origin
from sync.plan import Entry, origin_columns
from sync.table import Table, all_equal, column, concat, take, where


def origins(rows: list[Origin | None]) -> Table[Origin | None]:
    entries = [Entry("create", "+923001112233", "A", (), origin=o) for o in rows]
    cols = dict(zip(("file", "sheet", "row"), origin_columns(entries), strict=True))
    return Table(Origin, cols, optional="file")


def contacts(n: int) -> list[DesiredContact]:
    return [
        DesiredContact(
            f"+92300{i:07d}",
            f"Name {i}",
            ("Customers",) if i % 2 else (),
            Origin("a.csv", "S" if i % 3 else None, i + 2),
            f"0300{i:07d}",
            duplicates=(Origin("b.csv", None, i),) if i % 5 == 0 else (),
        )
        for i in range(n)
    ]


def as_table(rows: list[DesiredContact]) -> Table[DesiredContact]:
    cols = {f: column(rows, f) for f in DesiredContact.__slots__}
    cols["origin"] = Table(Origin, {f: column(cols["origin"], f) for f in ("file", "sheet", "row")})
    return Table(DesiredContact, cols)


@given(st.integers(0, 120), st.data())
def test_a_table_is_the_sequence_of_its_rows(n: int, data: st.DataObject) -> None:
    rows = contacts(n)
    table = as_table(rows)
    assert len(table) == n
    assert list(table) == rows and table == rows and rows == table
    if n:
        i = data.draw(st.integers(-n, n - 1))
        assert table[i] == rows[i]
        assert type(table[i]) is DesiredContact
    start, stop = data.draw(st.integers(0, n)), data.draw(st.integers(0, n))
    assert list(table[start:stop]) == rows[start:stop]
    assert isinstance(table[start:stop], Table)
    at = data.draw(st.lists(st.integers(0, n - 1), max_size=20)) if n else []
    assert list(take(table, at)) == take(rows, at) == [rows[i] for i in at]
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    kept = [r for r, k in zip(rows, keep, strict=True) if k]
    assert list(where(table, keep)) == where(rows, keep) == kept
    assert column(table, "phone") == column(rows, "phone")


def test_iteration_crosses_batches() -> None:
    rows = contacts(120_001)  # more than two of the batches a Table is made in
    assert list(as_table(rows)) == rows


def test_an_optional_row_is_none_where_its_field_is() -> None:
    rows: list[Origin | None] = [Origin("a.csv", None, 2), None, Origin("b.xlsx", "S", 7)]
    table = origins(rows)
    assert list(table) == rows and table[1] is None and table[-1] == rows[-1]
    assert column(table, "file") == ["a.csv", None, "b.xlsx"]
    entries = [Entry("create", "+923001112233", "A", (), origin=o) for o in rows]
    assert origin_columns(entries)[2] == [2, None, 7]


def test_concat_keeps_the_columns_and_shapes_a_nested_table() -> None:
    entry = Entry("create", "+923001112233", "A", ("G",), origin=Origin("a.csv", None, 2))
    remote = Entry("keep", "+923001112244", "B", ("1",), "kept", remote_id=9)
    cols = {f: column([entry], f) for f in Entry.__slots__}
    cols["origin"] = origins([entry.origin])
    table: Table[Entry] = Table(Entry, cols)
    both = concat(table, [remote])
    assert isinstance(both, Table) and isinstance(both.columns["origin"], Table)
    assert list(both) == [entry, remote]
    assert concat(table, both) == [entry, entry, remote]
    assert concat([entry], [remote]) == [entry, remote]


def test_concat_extends_only_the_columns_it_is_told_it_owns() -> None:
    rows = contacts(4)
    table = as_table(rows)
    names, phones = table.columns["name"], table.columns["phone"]
    more = contacts(6)[4:]
    both = concat(table, more, extend=("name",))
    assert list(both) == [*rows, *more]
    assert both.columns["name"] is names and len(names) == 6, "extended in place"
    assert both.columns["phone"] is not phones and len(phones) == 4, "copied: not its own"
    assert list(concat(as_table(rows), more, extend=("origin",))) == [*rows, *more]


def test_a_table_refuses_columns_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="needs the columns"):
        Table(Origin, {"file": ["a"], "sheet": [None]})
    with pytest.raises(ValueError, match="differ in length"):
        Table(Origin, {"file": ["a"], "sheet": [None], "row": [1, 2]})
    with pytest.raises(ValueError, match="not a field"):
        Table(Origin, {"file": ["a"], "sheet": [None], "row": [1]}, optional="name")
    table = origins([Origin("a.csv", None, 2)])
    assert table != [Origin("a.csv", None, 3)] and table != "a.csv"
    with pytest.raises(TypeError):
        hash(table)


@given(st.lists(st.sampled_from(["a", "b", None, 0]), max_size=30))
def test_all_equal_is_whether_every_value_equals_the_first(values: list[object]) -> None:
    assert all_equal(values) == (bool(values) and all(v == values[0] for v in values))
