"""Helpers to drive the emulator in-process from synchronous tests (no pytest-asyncio needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from sync.emulator import EmulatorApp

BASE = "http://emulator.test/api/"


async def _send(app: EmulatorApp, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as client:
        return await client.request(method, url, **kwargs)


def request(app: EmulatorApp, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One HTTP request through httpx.ASGITransport; kwargs go to httpx (params, data, files...)."""
    return asyncio.run(_send(app, method, url, **kwargs))


def call(
    app: EmulatorApp,
    endpoint: str,
    method: str = "GET",
    *,
    secret: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Call an endpoint with the primary key (or `secret`) and return the JSON envelope.

    GET sends `params` in the query string; POST sends them as an urlencoded form body.
    """
    query = {"secret": app.store.secret if secret is None else secret}
    if method == "GET":
        response = request(app, "GET", endpoint, params={**query, **params})
    else:
        response = request(app, "POST", endpoint, params=query, data=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "message", "data"}
    return body
