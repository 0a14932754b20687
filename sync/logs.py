"""structlog set-up and secret redaction.

The API secret travels in the query string of every GET, and httpx puts URLs in its exception
text, so redaction works at two depths: `redact_url` masks the `secret` parameter of any URL, and
`redact` also removes every registered secret value wherever it appears in a string. The structlog
processor applies `redact` to every event before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

MASK = "***"
_SECRET_PARAM = re.compile(r"(?i)(secret=)[^&#\s'\"]*")
_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember a secret so that `redact` removes it from any text."""
    if secret:
        _secrets.add(secret)


def redact_url(url: object) -> str:
    """The URL as text with the value of its `secret` parameter masked."""
    return _SECRET_PARAM.sub(rf"\g<1>{MASK}", str(url))


def redact(text: str) -> str:
    """Text with every `secret=` value and every registered secret masked."""
    text = _SECRET_PARAM.sub(rf"\g<1>{MASK}", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every value of the event."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(value)
    return event_dict


class LogStream:
    """The stream logs are printed to; once writing to it fails (its reader has gone: EPIPE; a
    terminal that closed: EIO), logging goes quiet instead of raising into the run. A sync must
    not stop half-way because a log collector died: its reports are the record of what it did."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost: OSError | None = None

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self.lost = exc
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self.lost = exc


def configure(fmt: str = "auto", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Configure structlog: `fmt` is console, json or auto (console on a terminal, else JSON lines).

    `verbosity`: -1 warnings only, 0 info, 1+ debug.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # a file in all but name: print() needs only write() and flush()
        logger_factory=structlog.PrintLoggerFactory(file=LogStream(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
