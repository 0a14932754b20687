"""Small fakes shared by tests."""

from __future__ import annotations


class Sleeps(list[float]):
    """An injected sleep: records each wait, waits for nothing."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
