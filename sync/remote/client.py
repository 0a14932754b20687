"""`WasmsClient`: the async client of the WaSMS.Net contacts API.

One `httpx.AsyncClient` inside; every request goes through the concurrency bound (a semaphore of
`settings.concurrency`) and, when `settings.rate` is set, the sliding-window `RateLimiter`, retries
included. create/* are sent as urlencoded POST forms, get/* and delete/* as GET with a query string,
the secret in the parameters (httpx percent-encodes `+` as `%2B`).

Writes and ambiguity. A failure is *ambiguous* when the request may have reached the application
and been carried out: a read timeout, a connection dropped after sending, a proxy 5xx or non-JSON
answer, the application's own 500. A connect error, a pool timeout or a proxy 429 are not (the
request never arrived). Then:

- create_contact: a retry that meets "Phone number already exist…" after an ambiguous failure is
  the earlier attempt's success: `WriteResult(recovered=True)`. On the first attempt (or after
  only unambiguous failures) it is a real `PhoneExists`.
- create_group: the server accepts duplicate names, so before retrying after an ambiguous failure
  the client lists get/groups; if a group with that name is there, the earlier attempt worked
  (`recovered=True`) and nothing is re-sent. A duplicate is still possible if the lost request is
  applied only after that check (a very slow server): callers re-list groups afterwards anyway.
- QuotaReached after an ambiguous failure may mean the lost attempt took the last free slot:
  it is raised as is; only a fresh listing can tell.
- deletes answer 200 whether or not a row was removed, so retrying them is always safe.

Secrets. httpx exceptions carry the request URL (with `?secret=`): they are never chained. The
client raises its own exceptions with redacted text, outside the `except` block, so neither
`__cause__` nor `__context__` holds the httpx error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from sync import __version__
from sync.errors import InvalidRequest, PhoneExists, RemoteError, ServerError, TransientError
from sync.logs import get_logger, redact, redact_url, register_secret
from sync.models import OptOut, RemoteContact, RemoteGroup

from . import envelope, rows
from .config import ClientSettings, WriteResult
from .limits import RateLimiter
from .paging import Pager
from .retry import policy

log = get_logger("sync.remote")

Sleep = Callable[[float], Awaitable[None]]
Method = Literal["GET", "POST"]

# httpx errors raised before the request could reach the server
_RECOVERED: Any = object()  # _call's answer when before_retry found the write done
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(slots=True)
class _Op:
    """Book-keeping of one operation across its attempts."""

    requests: int = 0
    ambiguous: bool = False  # some attempt failed in a way that may have been applied


class WasmsClient:
    """Typed async access to every endpoint of the contacts API (see the module docstring)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        limiter: RateLimiter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        register_secret(settings.secret)
        register_secret(str(httpx.QueryParams({"s": settings.secret}))[2:])  # as sent in a URL
        self.settings = settings
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._rng = rng if rng is not None else random.Random()  # jitter, not cryptography
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        if limiter is None and settings.rate is not None:
            limiter = RateLimiter(settings.rate)
        self._limiter = limiter
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(
                max_connections=settings.concurrency,
                max_keepalive_connections=settings.concurrency,
            ),
            follow_redirects=False,  # a redirect must not carry the secret elsewhere
            headers={"user-agent": f"contact-sync/{__version__}", "accept": "application/json"},
        )
        self._pagers = {
            e: Pager(e, settings.page_size)
            for e in ("get/contacts", "get/groups", "get/unsubscribed")
        }
        self.requests_sent = 0
        self.requests_by_endpoint: Counter[str] = Counter()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- listings -------------------------------------------------------------------------------

    async def list_contacts(self) -> list[RemoteContact]:
        """Every contact (complete despite the server's paging off-by-one), newest first."""
        return [rows.contact(r) for r in await self._list("get/contacts")]

    async def list_groups(self) -> list[RemoteGroup]:
        return [rows.group(r) for r in await self._list("get/groups")]

    async def list_unsubscribed(self) -> list[OptOut]:
        return [rows.optout(r) for r in await self._list("get/unsubscribed")]

    async def _list(self, endpoint: str, op: _Op | None = None) -> list[Any]:
        counted = op or _Op()

        async def fetch(page: int, limit: int) -> list[Any]:
            data = await self._call("GET", endpoint, {"limit": limit, "page": page}, counted)
            if not isinstance(data, list):
                raise RemoteError(
                    f"{endpoint}: expected a list of rows, got {type(data).__name__}",
                    endpoint=endpoint,
                )
            return data

        return await self._pagers[endpoint].collect(fetch, rows.row_id)

    # -- writes ---------------------------------------------------------------------------------

    async def create_contact(self, phone: str, name: str, groups: Sequence[int]) -> WriteResult:
        """Create one contact (`phone` in E.164). See the module docstring for `recovered`."""
        op = _Op()
        form = {"phone": phone, "name": name, "groups": ",".join(str(int(g)) for g in groups)}
        try:
            await self._call("POST", "create/contact", form, op)
        except PhoneExists as exc:
            if not op.ambiguous:
                raise
            log.info(
                "remote.recovered", endpoint="create/contact", attempts=op.requests, cause=str(exc)
            )
            return WriteResult(attempts=op.requests, recovered=True)
        return WriteResult(attempts=op.requests)

    async def create_group(self, name: str) -> WriteResult:
        """Create a group (the server returns no id: list groups afterwards to learn it)."""
        op = _Op()
        wanted = " ".join(name.split())

        async def already_there() -> bool:
            listing = _Op()
            try:
                found = [rows.group(r) for r in await self._list("get/groups", listing)]
            finally:
                op.requests += listing.requests
            return any(" ".join(g.name.split()) == wanted for g in found)

        done = await self._call(
            "POST", "create/group", {"name": name}, op, before_retry=already_there
        )
        if done is _RECOVERED:
            log.info("remote.recovered", endpoint="create/group", attempts=op.requests)
        return WriteResult(attempts=op.requests, recovered=done is _RECOVERED)

    async def delete_contact(self, contact_id: int) -> WriteResult:
        return await self._delete("delete/contact", contact_id)

    async def delete_group(self, group_id: int) -> WriteResult:
        return await self._delete("delete/group", group_id)

    async def delete_unsubscribed(self, optout_id: int) -> WriteResult:
        return await self._delete("delete/unsubscribed", optout_id)

    async def _delete(self, endpoint: str, row_id: int) -> WriteResult:
        """A delete answers 200 even for an unknown id: only a fresh listing proves the effect."""
        op = _Op()
        await self._call("GET", endpoint, {"id": int(row_id)}, op)
        return WriteResult(attempts=op.requests)

    async def check_permission(self, endpoint: str) -> None:
        """Raise PermissionDenied if the key may not use `endpoint`, without changing anything.

        The server checks the key's permission before the endpoint's parameters, so a request
        with no parameters answers 403 without the permission and 400 `Invalid Parameters!`
        with it: a probe that can never write.
        """
        method: Method = "POST" if endpoint.startswith("create/") else "GET"
        try:
            await self._call(method, endpoint, {}, _Op())
        except InvalidRequest as exc:
            if exc.message.strip() == "Invalid Parameters!":
                return
            raise

    # -- one call, its retries, one request -----------------------------------------------------

    async def _call(
        self,
        method: Method,
        endpoint: str,
        params: Mapping[str, str | int],
        op: _Op,
        *,
        before_retry: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any:
        """The `data` of a successful answer, retrying transient failures; or `_RECOVERED` when
        `before_retry` (run before each retry that follows an ambiguous failure) says the earlier
        attempt took effect."""
        full = {**params, "secret": self.settings.secret}

        def build() -> httpx.Request:
            if method == "POST":
                return self._http.build_request("POST", endpoint, data=full)
            return self._http.build_request("GET", endpoint, params=full)

        shown = redact_url(build().url)
        result: Any = None
        retrying = policy(
            self.settings, endpoint=endpoint, url=shown, sleep=self._sleep, rng=self._rng
        )
        try:
            async for attempt in retrying:
                retry = attempt.retry_state.attempt_number > 1
                if before_retry and op.ambiguous and retry and await before_retry():
                    return _RECOVERED
                with attempt:
                    result = await self._send(endpoint, build(), op)
        except RemoteError as exc:
            exc.attempts = op.requests  # every request is accounted for, failed ones too
            if exc.retryable and op.requests > 1:
                exc.message += f" (gave up after {op.requests} attempts)"
                exc.hint = exc.hint or (
                    "check WASMS_BASE_URL, the network and the service's status, then run again"
                )
            raise
        return result

    async def _send(self, endpoint: str, request: httpx.Request, op: _Op) -> Any:
        """One HTTP request within the concurrency and rate bounds; its `data` or an exception."""
        failure: RemoteError | None = None
        async with self._semaphore, self._rate_slot():
            self.requests_sent += 1
            self.requests_by_endpoint[endpoint] += 1
            op.requests += 1
            try:
                response = await self._http.send(request)
            except httpx.RequestError as exc:
                # never chained: the httpx error carries the URL, secret included
                failure = self._transport_failure(endpoint, request, exc)
                op.ambiguous = op.ambiguous or not isinstance(exc, _NOT_SENT)
        if failure is not None:
            raise failure
        try:
            return envelope.read(endpoint, response)
        except (TransientError, ServerError) as exc:
            op.ambiguous = op.ambiguous or exc.status != 429
            raise

    def _rate_slot(self) -> contextlib.AbstractAsyncContextManager[object]:
        """The rate limiter's slot for one request (held until its answer), or nothing."""
        return self._limiter.slot() if self._limiter else contextlib.nullcontext()

    def _transport_failure(
        self, endpoint: str, request: httpx.Request, exc: httpx.RequestError
    ) -> RemoteError:
        """Our exception for an httpx failure, with redacted text only."""
        where = f"{request.method} {redact_url(request.url)}"
        detail = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            return RemoteError(
                f"{endpoint}: the server's TLS certificate was not trusted ({detail})",
                hint="check the base URL; a proxy may need its CA in SSL_CERT_FILE",
                endpoint=endpoint,
            )
        if isinstance(exc, httpx.TimeoutException):
            what = f"no answer within {self.settings.timeout:g}s"
        elif isinstance(exc, _NOT_SENT):
            what = "could not connect"
        else:
            what = "the connection failed"
        return TransientError(f"{endpoint}: {what}: {where} ({detail})", endpoint=endpoint)
