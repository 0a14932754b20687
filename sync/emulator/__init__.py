"""An emulator of the WaSMS.Net contacts API, exactly as /work/shared/wasms-api.md describes it.

store.py      accounts, keys, rows (trimmed, HTML-escaped, E.164) and counters; --state file
endpoints.py  the application logic: envelope checks, then each endpoint's checks in order
faults.py     proxy/network faults: latency, 429 + Retry-After, 502/503, answer lost
app.py        the Starlette app (in-process via httpx.ASGITransport, or over loopback)
server.py     uvicorn: run_in_thread() for tests and the demo, serve() for the CLI

store = Store(country="PK"); gid = store.add_group("Friends")
app = create_app(store, Faults(p429=1.0, times=1, scope="writes"), seed=1)
with run_in_thread(app) as base_url: ...   # http://127.0.0.1:PORT/api/, key: store.secret
"""

from __future__ import annotations

from sync.emulator.app import EmulatorApp, create_app
from sync.emulator.endpoints import Reply, dispatch
from sync.emulator.faults import AnswerLost, Chaos, Faults
from sync.emulator.server import run_in_thread, serve
from sync.emulator.store import PERMISSIONS, Account, StateError, Stats, Store

__all__ = [
    "PERMISSIONS",
    "Account",
    "AnswerLost",
    "Chaos",
    "EmulatorApp",
    "Faults",
    "Reply",
    "StateError",
    "Stats",
    "Store",
    "create_app",
    "dispatch",
    "run_in_thread",
    "serve",
]
