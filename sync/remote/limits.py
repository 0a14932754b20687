"""Request-rate limiting: a sliding-window log that the server side can trust.

`RateLimiter(rate)` guarantees that no half-open window of one second ever holds more than
`floor(rate)` requests; a rate below one becomes one request per `1/rate` seconds. Bursts up to
the capacity are allowed, then each new request waits until the oldest in the window has aged
out. Acquisitions are served in arrival order.

Where a request *arrives* at the server is somewhere between the moment it is granted and the
moment its answer comes back (a new connection's handshake can delay it by 100+ ms). So a slot
taken with `async with limiter.slot():` counts from its grant until one period after the request
*ended*: whatever the network does, no one-second window at the server sees more than the
capacity (measured: counting grants only let 111 requests through one second at --rate 100).
`acquire()` is a slot that ends the moment it is granted.

The clock and the sleep are injectable so tests drive the limiter with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most `capacity` acquisitions in any half-open window of `period` seconds."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.capacity = max(1, math.floor(rate))
        # rate >= 1: floor(rate) per second; rate < 1: one per 1/rate seconds.
        self.period = max(1.0, self.capacity / rate)
        self._clock = clock
        self._sleep = sleep
        self._ends: deque[float] = deque()  # when finished requests ended, oldest first
        self._in_flight = 0
        self._released = asyncio.Event()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a free slot that ends at once; return the time it was granted."""
        granted = await self._grant()
        self._release(granted)
        return granted

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold a slot for the duration of one request; it counts until a period after it."""
        granted = await self._grant()
        try:
            yield granted
        finally:
            self._release(self._clock())

    async def _grant(self) -> float:
        async with self._lock:
            while True:
                now = self._clock()
                while self._ends and now - self._ends[0] >= self.period:
                    self._ends.popleft()
                if self._in_flight + len(self._ends) < self.capacity:
                    self._in_flight += 1
                    return now
                if self._ends:
                    # never a zero sleep: a coarse or fake clock must still move forward
                    await self._sleep(max(self._ends[0] + self.period - now, 1e-6))
                else:  # every slot is in flight: a slot frees a period after one ends
                    self._released.clear()
                    await self._released.wait()

    def _release(self, ended: float) -> None:
        self._in_flight -= 1
        self._ends.append(max(ended, self._ends[-1]) if self._ends else ended)
        self._released.set()


def busiest_window(times: list[float], period: float = 1.0) -> int:
    """The most of `times` inside any half-open window `[t, t + period)`: how a log of request
    times is checked against a limit (tests, benchmarks)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
