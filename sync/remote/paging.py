"""Complete listings from get/contacts, get/groups and get/unsubscribed.

The real server computes `offset = 0 if page < 2 else page * limit` (rows `limit..2*limit-1` are
never served by naive paging); a corrected server would use `(page - 1) * limit`. Either way a
request serves a window `[m*l, (m+1)*l)` of the id-descending list, where `l` is the limit and
`m = page` on the real server, `m = page - 1` on a corrected one. Page 1 is row 0 on both.

The strategy:

1. Page 1 with `limit = 2 * page_size`. Fewer rows than asked means the list ended: done, in one
   request, from one SQL query (a consistent snapshot).
2. Otherwise every next request is chosen so that its window OVERLAPS the rows already read by at
   least one row (the anchor: the last row read) and reaches as far past them as possible, with
   `l <= page_size` (larger only if the account outgrows `page_size**2` rows). The window must
   contain the anchor: then it continues the listing seamlessly even if contacts were added or
   removed in between, and every row that existed throughout the listing is in it. If the anchor
   is missing, rows above it were deleted meanwhile and rows may have been skipped: the listing
   is torn and starts again (at most `passes` times, then `TransientError`). Likewise if new rows
   push the list down faster than it is read. A partial listing is never returned as complete.
3. The first overlapping request also tells the two servers apart: on the real server its window
   holds the anchor; on a corrected one it repeats rows already read. The answer is remembered,
   so later listings skip the probe; a wrong guess shows up as a missing anchor and resets it.
4. A window shorter than its limit is the end of the list. Rows are de-duplicated by id.

Cost for N rows and page size P: one request when N < 2P; else about N/P + 3 (the overlaps cost
a few rows per request), plus one probe on a corrected server. 100 000 contacts: 103 requests at
P=1000, 20 at P=5000; the first request asks for 2P rows, every later one for at most P.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from sync.errors import TransientError

Fetch = Callable[[int, int], Awaitable[list[Any]]]  # (page, limit) -> rows
KeyOf = Callable[[Any], int]
Mode = Literal["unknown", "skipping", "standard"]

MIN_FIRST = 8  # below this a first page cannot always be followed by an overlapping window
MAX_STALLED = 3  # full windows in a row without a new row: the list grows faster than it is read


class _Torn(Exception):
    """The list changed under the listing in a way that may hide rows."""


def next_window(known: int, page_size: int, m_min: int) -> tuple[int, int]:
    """(m, l) with `m >= m_min`, `m*l <= known - 1` (overlap) and `(m+1)*l` as large as possible.

    `known` is the number of rows already read from the top of the list (>= MIN_FIRST - 1).
    """
    cap = max(page_size, 2 * math.isqrt(known) + 2)
    l_max = min(cap, (known - 1) // m_min)
    if l_max < 1:
        raise ValueError(f"no overlapping window after {known} rows")
    best_m, best_l, best_end = 0, 0, -1
    for limit in range(l_max, max(1, l_max // 2) - 1, -1):
        m = (known - 1) // limit
        end = (m + 1) * limit
        if end > best_end:
            best_m, best_l, best_end = m, limit, end
    if best_end <= known:
        raise ValueError(f"no progress possible after {known} rows")
    return best_m, best_l


class Pager:
    """Lists one endpoint completely; remembers which pagination the server uses."""

    def __init__(self, endpoint: str, page_size: int, *, passes: int = 3) -> None:
        self.endpoint = endpoint
        self.page_size = page_size
        self.passes = passes
        self.mode: Mode = "unknown"

    async def collect(self, fetch: Fetch, key: KeyOf) -> list[Any]:
        """Every row, de-duplicated by `key`, in the server's order."""
        for _ in range(self.passes):
            try:
                return await self._one_pass(fetch, key)
            except _Torn:
                self.mode = "unknown"
        raise TransientError(
            f"{self.endpoint}: the list kept changing while it was read "
            f"({self.passes} attempts); no partial listing is returned",
            hint="run again when nothing else is editing the account",
            endpoint=self.endpoint,
        )

    async def _one_pass(self, fetch: Fetch, key: KeyOf) -> list[Any]:
        first = max(2 * self.page_size, MIN_FIRST)
        window = await fetch(1, first)
        if len(window) > first:
            raise _Torn
        rows: dict[int, Any] = {}
        for row in window:
            rows.setdefault(key(row), row)
        if len(window) < first:
            return list(rows.values())
        position = len(window)  # rows read from the top, through the anchor
        anchor = key(window[-1])
        previous = [key(r) for r in window]
        stalled = 0
        while True:
            standard = self.mode == "standard"
            m, limit = next_window(position, self.page_size, 1 if standard else 2)
            window = await fetch(m + 1 if standard else m, limit)
            keys = [key(r) for r in window]
            if len(window) > limit:
                raise _Torn
            if anchor not in keys:
                probe_repeats = keys == previous[(m - 1) * limit : m * limit]
                if self.mode == "unknown" and keys and probe_repeats:
                    self.mode = "standard"  # page 2 repeated page 1's rows: a corrected server
                    continue
                raise _Torn
            if self.mode == "unknown":
                self.mode = "skipping"
            added = 0
            for k, row in zip(keys, window, strict=True):
                if k not in rows:
                    rows[k] = row
                    added += 1
            if len(window) < limit:
                return list(rows.values())
            stalled = 0 if added else stalled + 1
            if stalled >= MAX_STALLED:
                raise _Torn  # new rows push the list down faster than it is read
            position = m * limit + len(window)
            anchor = keys[-1]
            previous = []
