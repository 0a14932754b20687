"""The ASGI app: HTTP in front of `endpoints.dispatch`, with fault injection on the way.

Routes:
  GET|POST /api/<endpoint>     the WaSMS API; parameters from the query string and, on POST, from
                               an urlencoded or multipart form (form wins on a clash, like PHP's
                               $_REQUEST); JSON bodies are not read. Always HTTP 200 + envelope,
                               unless a fault stands in for a proxy.
  GET      /_emulator/stats    the request/change/fault counters (not part of the real server)

The same `EmulatorApp` serves tests in-process (`httpx.ASGITransport(app)`) and users over loopback
(`server.run_in_thread` / `server.serve`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import ClassVar

import httpx
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sync.emulator.endpoints import dispatch
from sync.emulator.faults import AnswerLost, Chaos, Decision, Faults, proxy_page
from sync.emulator.store import WRITE_ENDPOINTS, Store

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class EmulatorApp(Starlette):
    """The emulator: `store` holds data and counters, `chaos` the fault rules (see set_faults)."""

    def __init__(
        self,
        store: Store,
        faults: Faults | Iterable[Faults] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.chaos = Chaos(faults, seed)
        super().__init__(
            routes=[
                Route("/api/{endpoint:path}", self._api, methods=["GET", "POST"]),
                Route("/_emulator/stats", self._stats, methods=["GET"]),
            ]
        )

    def set_faults(self, faults: Faults | Iterable[Faults] | None) -> None:
        """Replace the active fault rules; None turns faults off."""
        self.chaos.set(faults)

    async def _api(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"].rstrip("/")
        with self.store.lock:
            self.store.stats.requests[endpoint] += 1
        decision = self.chaos.decide(is_write=endpoint in WRITE_ENDPOINTS)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.kind in ("429", "502", "503"):
            return self._proxy_answer(decision)
        params = await _read_params(request)
        reply = dispatch(self.store, endpoint, params)
        if decision.kind is not None:
            if reply.status == 200:  # the work is done; now lose the answer
                return self._proxy_answer(decision)
            self.chaos.refund(decision)  # nothing was stored: there is no work to lose
        return JSONResponse(reply.body())

    def _proxy_answer(self, decision: Decision) -> Response:
        kind = decision.kind
        assert kind is not None and decision.rule is not None
        with self.store.lock:
            self.store.stats.faults[kind] += 1
        if kind == "drop":
            return _Drop()
        code = 502 if kind == "lost502" else int(kind)
        headers = {}
        if code == 429 and decision.rule.retry_after is not None:
            headers["Retry-After"] = str(decision.rule.retry_after)
        if code == 429 and decision.rule.json_429:
            return JSONResponse({"message": "Too Many Requests"}, code, headers)
        return Response(proxy_page(code), code, headers, media_type="text/html")

    async def _stats(self, request: Request) -> Response:
        with self.store.lock:
            return JSONResponse(self.store.stats.as_dict())


def create_app(
    store: Store | None = None,
    faults: Faults | Iterable[Faults] | None = None,
    *,
    seed: int | None = None,
) -> EmulatorApp:
    """An emulator over `store` (a fresh account when None), with optional faults and RNG seed."""
    return EmulatorApp(store if store is not None else Store(), faults, seed=seed)


async def _read_params(request: Request) -> dict[str, str]:
    """Query string, then (POST only) form fields over it; file parts, JSON and a body that does
    not parse are ignored, as PHP ignores them."""
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith(_FORMS):
        try:
            async with request.form() as form:
                fields = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
        except HTTPException:  # a malformed multipart body
            fields = []
        params.update(fields)
    return params


class _Drop(Response):
    """Start a 200 answer, send part of it, then raise so the server drops the connection."""

    _PROMISED: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"content-type", b"application/json"),
        (b"content-length", b"64"),
    ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._PROMISED})
        await send({"type": "http.response.body", "body": b'{"status":200,', "more_body": True})
        request = Request(scope)
        raise AnswerLost(
            "emulator: work done, connection dropped before the answer",
            request=httpx.Request(request.method, str(request.url)),
        )
