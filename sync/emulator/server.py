"""The emulator over real loopback (uvicorn), from a background thread or in the foreground.

`run_in_thread(app)` is for tests and the demo: it binds a free port, yields the base URL
(`http://127.0.0.1:PORT/api/`) once the server accepts connections, and shuts down on exit.
`serve(app, host, port)` is for the CLI: it blocks until Ctrl-C / SIGTERM.

Both force the pure-Python h11 protocol (identical behaviour whatever extras are installed) and
hide uvicorn's traceback for the connections the fault injector drops on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from sync.emulator.faults import AnswerLost


class _HideDeliberateDrops(logging.Filter):
    """Drop uvicorn's "Exception in ASGI application" record when the exception is AnswerLost."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AnswerLost))


def _quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDeliberateDrops) for f in logger.filters):
        logger.addFilter(_HideDeliberateDrops())


def _config(app: ASGIApp, host: str, port: int, *, own_logging: bool) -> uvicorn.Config:
    """h11 whatever is installed; warnings only and no access log (it would show the secret).

    `own_logging` lets uvicorn configure its loggers (the CLI); tests leave logging alone.
    """
    _quiet_drops()
    return uvicorn.Config(
        app,
        host,
        port,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        log_level="warning",
        access_log=False,
    )


def _base_url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{host}:{port}/api/"


@contextlib.contextmanager
def run_in_thread(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a daemon thread; yield its base URL; stop and join on exit."""
    server = uvicorn.Server(_config(app, host, port, own_logging=False))
    thread = threading.Thread(target=server.run, name="emulator-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise RuntimeError(f"the emulator could not start on {host}:{port}")
        time.sleep(0.005)
    try:
        yield _base_url(server, host)
    finally:
        server.should_exit = True
        thread.join(10)


def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `app` in the foreground until interrupted; call `on_ready(base_url)` once listening."""
    server = uvicorn.Server(_config(app, host, port, own_logging=True))
    asyncio.run(_serve(server, host, on_ready))


async def _serve(server: uvicorn.Server, host: str, on_ready: Callable[[str], None] | None) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started and on_ready is not None:
        on_ready(_base_url(server, host))
    await task
