"""The listing strategy on its own (no HTTP): complete on the real server's off-by-one paging and
on a corrected one, at every size around page boundaries, cheap in requests, and never a partial
list when rows change while it is read."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import TransientError
from sync.remote.paging import MIN_FIRST, Mode, Pager, next_window


class Table:
    """Rows newest first, served with either pagination; `churn` runs before every request."""

    def __init__(self, size: int, paging: str, churn: random.Random | None = None) -> None:
        self.rows = list(range(size, 0, -1))
        self.next_id = size + 1
        self.paging = paging
        self.churn = churn
        self.requests: list[tuple[int, int]] = []
        self.ever: set[int] = set(self.rows)
        self.always: set[int] = set(self.rows)  # rows never deleted so far

    async def fetch(self, page: int, limit: int) -> list[dict[str, Any]]:
        self.requests.append((page, limit))
        if self.churn is not None:
            self.change(self.churn)
        if self.paging == "skipping":
            offset = 0 if page < 2 else page * limit
        else:
            offset = max(0, page - 1) * limit
        return [{"id": i} for i in self.rows[offset : offset + limit]]

    def change(self, rng: random.Random) -> None:
        for _ in range(rng.randint(0, 2)):
            if rng.random() < 0.5 or not self.rows:
                self.rows.insert(0, self.next_id)
                self.ever.add(self.next_id)
                self.next_id += 1
            else:
                gone = self.rows.pop(rng.randrange(len(self.rows)))
                self.always.discard(gone)


def collect(pager: Pager, table: Table) -> list[int]:
    rows = asyncio.run(pager.collect(table.fetch, lambda r: int(r["id"])))
    return [r["id"] for r in rows]


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 400),
    page_size=st.integers(2, 40),
    paging=st.sampled_from(["skipping", "standard"]),
)
def test_complete_and_in_order_on_both_paginations(size: int, page_size: int, paging: str) -> None:
    table = Table(size, paging)
    assert collect(Pager("get/contacts", page_size), table) == list(range(size, 0, -1))


@pytest.mark.parametrize("paging", ["skipping", "standard"])
@pytest.mark.parametrize("page_size", [2, 3, 5, 10])
def test_every_size_around_page_boundaries(paging: str, page_size: int) -> None:
    first = max(2 * page_size, MIN_FIRST)
    edges = {k * page_size + d for k in range(8) for d in (-1, 0, 1)} | {
        first - 1,
        first,
        first + 1,
    }
    for size in sorted(s for s in edges if s >= 0):
        table = Table(size, paging)
        assert collect(Pager("get/contacts", page_size), table) == list(range(size, 0, -1))


@pytest.mark.parametrize(("paging", "most"), [("skipping", 103), ("standard", 104)])
def test_100k_rows_take_about_n_over_page_size_requests(paging: str, most: int) -> None:
    table = Table(100_000, paging)
    assert len(collect(Pager("get/contacts", 1000), table)) == 100_000
    assert len(table.requests) <= most
    assert table.requests[0] == (1, 2000)
    assert all(limit <= 2000 for _, limit in table.requests)


def test_below_two_pages_is_one_request() -> None:
    table = Table(1999, "skipping")
    collect(Pager("get/contacts", 1000), table)
    assert table.requests == [(1, 2000)]


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 200),
    page_size=st.integers(2, 12),
    paging=st.sampled_from(["skipping", "standard"]),
    seed=st.integers(0, 2**32),
)
def test_churn_never_hides_a_row_that_stayed(
    size: int, page_size: int, paging: str, seed: int
) -> None:
    table = Table(size, paging, churn=random.Random(seed))
    try:
        ids = collect(Pager("get/contacts", page_size), table)
    except TransientError as exc:
        assert "kept changing" in str(exc)
        return
    assert len(ids) == len(set(ids))
    assert table.always <= set(ids) <= table.ever


@pytest.mark.parametrize(("wrong", "right"), [("standard", "skipping"), ("skipping", "standard")])
def test_a_wrong_remembered_pagination_is_unlearned(wrong: Mode, right: str) -> None:
    pager = Pager("get/contacts", 4)
    pager.mode = wrong
    assert collect(pager, Table(50, right)) == list(range(50, 0, -1))
    assert pager.mode == right


def test_a_server_ignoring_limit_is_never_taken_as_complete() -> None:
    async def everything(page: int, limit: int) -> list[dict[str, Any]]:
        return [{"id": i} for i in range(5000, 0, -1)]

    with pytest.raises(TransientError):
        asyncio.run(Pager("get/contacts", 10).collect(everything, lambda r: int(r["id"])))


@settings(max_examples=500, deadline=None)
@given(
    known=st.integers(MIN_FIRST - 1, 3_000_000),
    page_size=st.integers(2, 5000),
    m_min=st.sampled_from([1, 2]),
)
def test_next_window_overlaps_and_progresses(known: int, page_size: int, m_min: int) -> None:
    m, limit = next_window(known, page_size, m_min)
    assert m >= m_min and limit >= 1
    assert m * limit <= known - 1  # the window starts at or before the anchor
    assert (m + 1) * limit > known  # and ends past it
