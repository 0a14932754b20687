"""The retry policy: which errors are retried, how long to wait, and the log line of each retry.

Retried: `TransientError` (something in front of the application failed) and `ServerError` (the
application's own "Something went wrong!", raised when its database call fails; a retry is harmless
on every endpoint: reads and deletes are idempotent, and a create is protected by the duplicate
recovery in `client.py`). Everything else (401, 403, 400, quota, phone exists) fails at once.

Waits: exponential backoff with full jitter, `uniform(0, min(max, initial * 2**(n-1)))`, raised to
the server's `Retry-After` when there is one. A `Retry-After` longer than `retry_after_max` is not
waited for: the call gives up at once with the `TransientError` (its `retry_after` tells the caller
when to come back), rather than hammering a server that asked for patience.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from sync.errors import ServerError, TransientError
from sync.logs import get_logger, redact

from .config import ClientSettings

log = get_logger("sync.remote")

Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1 = the first retry)."""
    ceiling = min(maximum, initial * 2.0 ** min(attempt - 1, 62))
    return rng.uniform(0.0, ceiling)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | ServerError)


def _retry_after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome else None
    return exc.retry_after if isinstance(exc, TransientError) else None


def policy(
    settings: ClientSettings,
    *,
    endpoint: str,
    url: str,
    sleep: Sleep,
    rng: random.Random,
    max_attempts: int | None = None,
) -> AsyncRetrying:
    """A tenacity controller for one operation on `endpoint` (`url` is already redacted)."""
    attempts = max_attempts or settings.attempts

    def wait(state: RetryCallState) -> float:
        base = backoff(state.attempt_number, settings.backoff_initial, settings.backoff_max, rng)
        after = _retry_after(state)
        return base if after is None else max(base, after)

    def stop(state: RetryCallState) -> bool:
        after = _retry_after(state)
        too_long = after is not None and after > settings.retry_after_max
        return too_long or stop_after_attempt(attempts)(state)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "remote.retry",
            endpoint=endpoint,
            url=redact(url),
            attempt=state.attempt_number,
            attempts=attempts,
            wait=round(wait_s, 3),
            cause=redact(f"{type(exc).__name__}: {exc}") if exc else None,
            retry_after=_retry_after(state),
        )

    return AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
