"""Reading an answer: the JSON envelope, and the exception each failure maps to.

The application always answers HTTP 200 with `{"status", "message", "data"}`; success is
`status == 200`. Anything that is not such an envelope (a proxy's 429/502 page, HTML, a truncated
body) comes from something in front of the application and is a `TransientError`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from sync.errors import (
    AuthError,
    InvalidRequest,
    PermissionDenied,
    PhoneExists,
    QuotaReached,
    RemoteError,
    ServerError,
    TransientError,
)
from sync.logs import redact

from .retry import parse_retry_after

QUOTA_MESSAGE = "You have reached the maximum allowed contacts!"
PHONE_EXISTS_MESSAGE = "Phone number already exist in your contact book!"
KEYS_PAGE = "the WaSMS dashboard, Tools → API Keys"

_HINTS_400 = {
    "Invalid API Endpoint!": "the base URL must end in /api/ (e.g. https://sys.wasms.net/api/)",
    "Invalid Parameters!": "a required parameter was missing, empty or not an integer",
    "Account is not subscribed to any premium package!": "subscribe the account to a package",
    QUOTA_MESSAGE: (
        "the plan's contact quota is full: delete contacts or upgrade; retrying won't help"
    ),
    PHONE_EXISTS_MESSAGE: "the contact book already holds this phone number",
}


def permission_for(endpoint: str) -> str:
    """The permission an endpoint needs: `create/contact` → `create_contact`."""
    return endpoint.replace("/", "_")


def error_for(
    endpoint: str, status: int, message: str, *, retry_after: float | None = None
) -> RemoteError:
    """The exception for an envelope whose `status` is not 200."""
    said = redact(message)
    if status == 401:
        return AuthError(
            f"{endpoint}: the API secret was refused ({said})",
            hint=f"check the secret (WASMS_SECRET); copy the key again from {KEYS_PAGE}",
            endpoint=endpoint,
            status=status,
        )
    if status == 403:
        permission = permission_for(endpoint)
        return PermissionDenied(
            f"{endpoint}: this API key lacks the `{permission}` permission ({said})",
            permission=permission,
            hint=f"in {KEYS_PAGE}, edit the key and tick `{permission}`, or use a key that has it",
            endpoint=endpoint,
            status=status,
        )
    if status == 400:
        cls = {QUOTA_MESSAGE: QuotaReached, PHONE_EXISTS_MESSAGE: PhoneExists}.get(
            message.strip(), InvalidRequest
        )
        return cls(said, hint=_HINTS_400.get(message.strip()), endpoint=endpoint, status=status)
    if status == 500:
        return ServerError(
            f"{endpoint}: the server failed ({said})",
            hint="the WaSMS application reported an internal (database) failure; try again later",
            endpoint=endpoint,
            status=status,
        )
    if status == 429 or status >= 500:
        return TransientError(
            f"{endpoint}: status {status} ({said})",
            retry_after=retry_after,
            endpoint=endpoint,
            status=status,
        )
    return InvalidRequest(said, endpoint=endpoint, status=status)


def _snippet(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content-type").split(";")[0]
    text = " ".join(response.text[:160].split())
    return redact(f"{kind}: {text!r}" if text else f"{kind}, empty body")


def read(endpoint: str, response: httpx.Response) -> Any:
    """The `data` of a successful answer; raises the matching `RemoteError` otherwise."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    body: Any = None
    try:
        body = json.loads(response.content)
    except ValueError:  # not JSON (or not UTF-8): raised below, outside this handler
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        raise TransientError(
            f"{endpoint}: HTTP {response.status_code} without a WaSMS answer"
            f" ({_snippet(response)})",
            retry_after=retry_after,
            endpoint=endpoint,
            status=response.status_code,
        )
    assert isinstance(body, dict)
    if status == 200:
        return body.get("data")
    message = body.get("message")
    raise error_for(
        endpoint, status, message if isinstance(message, str) else "", retry_after=retry_after
    )
