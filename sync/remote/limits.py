"""Request-rate limiting: a sliding-window log.

`RateLimiter(rate)` guarantees that no half-open window of `window` seconds (one second by
default) ever holds more than `floor(rate)` request starts; a rate below one becomes one request
per `1/rate` seconds. Bursts up to the capacity are allowed, then each new request waits until
the oldest in the window has aged out. Acquisitions are served in arrival order.

The clock and the sleep are injectable so tests drive the limiter with a fake clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

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
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a free slot, record it, and return the time it was granted."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.period:
                    self._starts.popleft()
                if len(self._starts) < self.capacity:
                    self._starts.append(now)
                    return now
                # never a zero sleep: a coarse or fake clock must still move forward
                await self._sleep(max(self._starts[0] + self.period - now, 1e-6))


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
