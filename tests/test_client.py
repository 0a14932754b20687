"""WasmsClient against an in-memory fake server (httpx.MockTransport): envelope and error mapping,
retries and their logs, Retry-After, write ambiguity, encoding, listings, bounds and secrets."""

from __future__ import annotations

import asyncio
import email.utils
import html
import ssl
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from sync.errors import (
    AuthError,
    ConfigError,
    InvalidRequest,
    PermissionDenied,
    PhoneExists,
    QuotaReached,
    RemoteError,
    ServerError,
    TransientError,
)
from sync.models import OptOut, RemoteContact, RemoteGroup
from sync.remote import ClientSettings, RateLimiter, WasmsClient, WriteResult
from sync.remote.limits import busiest_window
from tests.fakes import Sleeps

SECRET = "s3cr3t+key/Zq"  # has characters that URL-encoding changes
BASE = "https://wasms.test/api/"

Handler = Callable[[httpx.Request], Any]


def envelope(status: int, message: str, data: Any = False) -> httpx.Response:
    return httpx.Response(200, json={"status": status, "message": message, "data": data})


def params_of(request: httpx.Request) -> dict[str, str]:
    """What a PHP server reads: the query string, then the urlencoded form over it."""
    out = dict(request.url.params)
    if request.method == "POST":
        body = request.content.decode()
        out.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
    return out


class Fake:
    """A small WaSMS server. `paging` is "skipping" (the real off-by-one) or "standard".

    `script` holds canned answers (a Response, an exception to raise, or a callable) consumed by
    the next requests before the normal logic runs.
    """

    def __init__(self, contacts: int = 0, *, paging: str = "skipping") -> None:
        self.paging = paging
        self.contacts: list[dict[str, Any]] = [
            {"id": i, "phone": f"+1202555{i:04d}", "name": f"Name {i}", "groups": ["1"]}
            for i in range(contacts, 0, -1)
        ]
        self.groups: list[dict[str, Any]] = [{"id": 1, "name": "Default"}]
        self.optouts: list[dict[str, Any]] = []
        self.next_id = contacts + 1
        self.requests: list[httpx.Request] = []
        self.script: list[Any] = []
        self.between: Callable[[Fake], None] | None = None  # runs before every listing request

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                return item(request)  # type: ignore[no-any-return]
            return item  # type: ignore[no-any-return]
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        p = params_of(request)
        if p.get("secret") != SECRET:
            return envelope(401, "Invalid API secret supplied!")
        endpoint = request.url.path.removeprefix("/api/")
        if endpoint.startswith("get/"):
            if self.between:
                self.between(self)
            table = {"get/contacts": self.contacts, "get/groups": self.groups}.get(
                endpoint, self.optouts
            )
            limit, page = int(p.get("limit", 10)), int(p.get("page", 1))
            if self.paging == "skipping":
                offset = 0 if page < 2 else page * limit
            else:
                offset = max(0, page - 1) * limit
            return envelope(200, "Listing", table[offset : offset + limit])
        if endpoint == "create/contact":
            if any(c["phone"] == p["phone"] for c in self.contacts):
                return envelope(400, "Phone number already exist in your contact book!")
            self.store_contact(p["phone"], p["name"], p["groups"].split(","))
            return envelope(200, "Contact has been created!")
        if endpoint == "create/group":
            self.groups.insert(0, {"id": self.new_id(), "name": html.escape(p["name"])})
            return envelope(200, "Contact group has been created!")
        if endpoint.startswith("delete/"):
            return envelope(200, "Deleted!")
        return envelope(400, "Invalid API Endpoint!")

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def store_contact(self, phone: str, name: str, groups: list[str]) -> None:
        row = {"id": self.new_id(), "phone": phone, "name": html.escape(name), "groups": groups}
        self.contacts.insert(0, row)

    def stats(self, endpoint: str) -> int:
        return sum(r.url.path.endswith(endpoint) for r in self.requests)


def make(fake: Fake | Handler, sleeps: Sleeps | None = None, **settings: Any) -> WasmsClient:
    handler = fake.handler if isinstance(fake, Fake) else fake
    opts: dict[str, Any] = {"base_url": BASE, "secret": SECRET, **settings}
    return WasmsClient(
        ClientSettings(**opts),
        transport=httpx.MockTransport(handler),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def run(client: WasmsClient, call: Callable[[WasmsClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with client:
            return await call(client)

    return asyncio.run(go())


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Every text a user or a log could see of `exc`: str, repr, hint, the traceback, the chain."""
    yield "".join(traceback.format_exception(exc))
    seen: BaseException | None = exc
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield repr(getattr(seen, "args", ""))
        seen = seen.__cause__ or seen.__context__


def assert_no_secret(texts: Any) -> None:
    encoded = urllib.parse.quote(SECRET, safe="")
    for text in texts:
        assert SECRET not in str(text)
        assert encoded not in str(text)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://sys.wasms.net/api/",
        "http://10.0.0.5/api/",
        "http://127.example.com/api/",
        "ftp://sys.wasms.net/api/",
        "sys.wasms.net/api/",
        "https://sys.wasms.net/api/?secret=x",
    ],
)
def test_refuses_insecure_or_unusable_base_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        ClientSettings(base_url=url, secret=SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/api",
        "http://127.3.4.5/api/",
        "http://localhost:1/api/",
        "http://[::1]:9/api/",
    ],
)
def test_allows_http_for_loopback_and_adds_the_slash(url: str) -> None:
    assert ClientSettings(base_url=url, secret=SECRET).base_url.endswith("/api/")


def test_settings_defaults_validation_and_secret_kept_out_of_repr() -> None:
    settings = ClientSettings(secret=SECRET)
    assert settings.base_url == "https://sys.wasms.net/api/"
    assert SECRET not in repr(settings)
    for bad in ({"secret": ""}, {"secret": SECRET, "attempts": 0}, {"secret": SECRET, "rate": 0}):
        with pytest.raises(ConfigError):
            ClientSettings(**bad)


def test_tls_verification_stays_on() -> None:
    client = WasmsClient(ClientSettings(secret=SECRET))
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
    asyncio.run(client.aclose())


# -- requests as sent --------------------------------------------------------------------------


def test_create_is_a_post_form_and_plus_reaches_the_server() -> None:
    fake = Fake()
    result = run(make(fake), lambda c: c.create_contact("+639184661538", "Tom & Jerry", [1, 9]))
    assert result == WriteResult(attempts=1)
    request = fake.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"phone=%2B639184661538" in request.content
    assert "secret" not in request.url.params  # POST: the secret travels in the body
    p = params_of(request)
    assert p == {"phone": "+639184661538", "name": "Tom & Jerry", "groups": "1,9", "secret": SECRET}


def test_gets_carry_an_encoded_secret_in_the_query() -> None:
    fake = Fake()
    run(make(fake), lambda c: c.delete_contact(7))
    request = fake.requests[0]
    assert request.method == "GET" and request.url.path == "/api/delete/contact"
    assert "%2B" in request.url.query.decode()  # the + of the secret is percent-encoded
    assert dict(request.url.params) == {"id": "7", "secret": SECRET}


@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        (lambda c: c.create_group("Friends"), "create/group"),
        (lambda c: c.delete_contact(3), "delete/contact"),
        (lambda c: c.delete_group(3), "delete/group"),
        (lambda c: c.delete_unsubscribed(3), "delete/unsubscribed"),
    ],
)
def test_every_write_endpoint(call: Callable[[WasmsClient], Awaitable[Any]], endpoint: str) -> None:
    fake = Fake()
    client = make(fake)
    assert run(client, call) == WriteResult(attempts=1)
    assert fake.requests[0].url.path == f"/api/{endpoint}"
    assert client.requests_sent == 1 and client.requests_by_endpoint[endpoint] == 1


# -- typed listings ------------------------------------------------------------------------------


def test_listings_are_typed_and_unescaped() -> None:
    fake = Fake()
    fake.contacts = [
        {
            "id": 5,
            "phone": "+15551234567",
            "name": "Tom &amp; Jerry &lt;3",
            "groups": ["1", "", "9"],
        },
        {"id": 4, "phone": "+15551234568", "name": "O&#039;Neil &quot;Q&quot;", "groups": []},
    ]
    fake.groups = [{"id": 9, "name": "A &amp; B"}, {"id": 1, "name": "Default"}]
    fake.optouts = [{"id": 2, "phone": "+639694967617", "created": 1645755138}]
    client = make(fake)
    contacts, groups, optouts = run(
        client, lambda c: asyncio.gather(c.list_contacts(), c.list_groups(), c.list_unsubscribed())
    )
    assert contacts == [
        RemoteContact(5, "+15551234567", "Tom & Jerry <3", (1, 9)),
        RemoteContact(4, "+15551234568", 'O\'Neil "Q"', ()),
    ]
    assert groups == [RemoteGroup(9, "A & B"), RemoteGroup(1, "Default")]
    assert optouts == [OptOut(2, "+639694967617", 1645755138)]


def test_a_listing_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(RemoteError, match="expected a list"):
        run(make(lambda r: envelope(200, "Saved Contacts", False)), lambda c: c.list_contacts())


# -- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (envelope(401, "Invalid API secret supplied!"), AuthError, "secret was refused"),
        (envelope(400, "Invalid Parameters!"), InvalidRequest, "Invalid Parameters!"),
        (envelope(400, "Group #7 is invalid!"), InvalidRequest, "Group #7 is invalid!"),
        (envelope(400, "Contact name is too short!"), InvalidRequest, "Contact name is too short!"),
        (envelope(400, "You have reached the maximum allowed contacts!"), QuotaReached, "maximum"),
        (envelope(400, "Phone number already exist in your contact book!"), PhoneExists, "exist"),
    ],
)
def test_application_errors_map_and_are_not_retried(
    answer: httpx.Response, error: type[Exception], text: str
) -> None:
    sleeps = Sleeps()
    client = make(lambda r: answer, sleeps)
    with pytest.raises(error, match=text) as info:
        run(client, lambda c: c.create_contact("+15551234567", "Somebody", [1]))
    assert type(info.value) is error
    assert client.requests_sent == 1 and sleeps == []
    assert isinstance(info.value, RemoteError) and info.value.endpoint == "create/contact"


def test_invalid_request_keeps_the_servers_words() -> None:
    client = make(lambda r: envelope(400, "Invalid phone number!"))
    with pytest.raises(InvalidRequest) as info:
        run(client, lambda c: c.create_contact("+1", "Somebody", [1]))
    assert info.value.message == "Invalid phone number!" and info.value.status == 400


@pytest.mark.parametrize(
    ("call", "permission"),
    [
        (lambda c: c.create_contact("+15551234567", "Some One", [1]), "create_contact"),
        (lambda c: c.create_group("Friends"), "create_group"),
        (lambda c: c.delete_contact(1), "delete_contact"),
        (lambda c: c.delete_group(1), "delete_group"),
        (lambda c: c.delete_unsubscribed(1), "delete_unsubscribed"),
        (lambda c: c.list_contacts(), "get_contacts"),
        (lambda c: c.list_groups(), "get_groups"),
        (lambda c: c.list_unsubscribed(), "get_unsubscribed"),
    ],
)
def test_permission_denied_names_the_permission_and_the_fix(
    call: Callable[[WasmsClient], Awaitable[Any]], permission: str
) -> None:
    answer = envelope(403, "This API key doesn't have permission to use this endpoint!")
    client = make(lambda r: answer)
    with pytest.raises(PermissionDenied) as info:
        run(client, call)
    assert info.value.permission == permission
    assert permission in info.value.message
    assert info.value.hint and "API Keys" in info.value.hint and permission in info.value.hint
    assert client.requests_sent == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502, text="<html>502 Bad Gateway</html>"),
        httpx.Response(503, text="<html>503</html>"),
        httpx.Response(429, text="Too Many Requests"),
        httpx.Response(429, json={"message": "Too Many Requests"}),
        httpx.Response(200, text="<br /><b>Fatal error</b>: Allowed memory size exhausted"),
        httpx.Response(200, content=b"\xff\xfe not utf-8"),
        httpx.Response(200, json=["not", "an", "envelope"]),
        httpx.Response(200, json={"status": "200", "message": "string status"}),
        httpx.Response(200, text=""),
        envelope(502, "Bad Gateway (proxy JSON)"),
    ],
)
def test_answers_from_in_front_of_the_application_are_transient(answer: httpx.Response) -> None:
    sleeps = Sleeps()
    client = make(lambda r: answer, sleeps, attempts=3)
    with pytest.raises(TransientError) as info:
        run(client, lambda c: c.list_groups())
    assert client.requests_sent == 3 and len(sleeps) == 2
    assert info.value.retryable


def test_success_is_the_envelope_status_whatever_the_http_status() -> None:
    weird = httpx.Response(503, json={"status": 200, "message": "Contact Groups", "data": []})
    assert run(make(lambda r: weird), lambda c: c.list_groups()) == []


def test_server_error_is_retried_then_raised() -> None:
    sleeps = Sleeps()
    client = make(lambda r: envelope(500, "Something went wrong!"), sleeps, attempts=4)
    with pytest.raises(ServerError, match="Something went wrong!"):
        run(client, lambda c: c.delete_group(3))
    assert client.requests_sent == 4 and len(sleeps) == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timeout"),
        httpx.ReadTimeout("read timeout"),
        httpx.WriteTimeout("write timeout"),
        httpx.PoolTimeout("pool"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
def test_transport_failures_are_transient_and_retried(exc: Exception) -> None:
    sleeps = Sleeps()
    fake = Fake()
    fake.script = [exc, exc]
    client = make(fake, sleeps)
    assert run(client, lambda c: c.list_groups()) == [RemoteGroup(1, "Default")]
    assert client.requests_sent == 3 and len(sleeps) == 2


def test_certificate_failures_are_not_retried() -> None:
    fake = Fake()
    fake.script = [httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")]
    client = make(fake)
    with pytest.raises(RemoteError, match="not trusted") as info:
        run(client, lambda c: c.list_groups())
    assert not isinstance(info.value, TransientError) and client.requests_sent == 1


def test_gives_up_after_the_configured_attempts() -> None:
    fake = Fake()
    fake.script = [httpx.ReadTimeout("slow")] * 10
    client = make(fake, attempts=2, timeout=1.5)
    with pytest.raises(TransientError, match=r"no answer within 1.5s"):
        run(client, lambda c: c.delete_contact(1))
    assert client.requests_sent == 2


# -- backoff, Retry-After, retry logs -----------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    sleeps = Sleeps()
    fake = Fake()
    fake.script = [httpx.Response(503, text="busy")] * 7
    client = make(fake, sleeps, attempts=8, backoff_initial=1.0, backoff_max=5.0)
    run(client, lambda c: c.list_groups())
    ceilings = [1, 2, 4, 5, 5, 5, 5]
    assert len(sleeps) == 7
    assert all(0 <= s <= cap for s, cap in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) > 1  # jittered


def test_retry_after_seconds_is_waited_at_least() -> None:
    sleeps = Sleeps()
    fake = Fake()
    fake.script = [httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")]
    client = make(fake, sleeps, backoff_initial=0.01)
    assert run(client, lambda c: c.list_groups())
    assert sleeps == [7.0]


def test_retry_after_http_date_is_waited_at_least() -> None:
    sleeps = Sleeps()
    fake = Fake()
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake.script = [httpx.Response(503, headers={"Retry-After": when}, text="maintenance")]
    client = make(fake, sleeps, backoff_initial=0.01)
    run(client, lambda c: c.list_groups())
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 31


def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    sleeps = Sleeps()
    fake = Fake()
    fake.script = [httpx.Response(429, headers={"Retry-After": "3600"}, text="tomorrow")]
    client = make(fake, sleeps, retry_after_max=60)
    with pytest.raises(TransientError) as info:
        run(client, lambda c: c.list_groups())
    assert info.value.retry_after == 3600 and sleeps == [] and client.requests_sent == 1


def test_each_retry_is_logged_without_the_secret() -> None:
    fake = Fake()
    fake.script = [
        httpx.ConnectError(f"failed to reach {BASE}get/groups?secret={SECRET}"),
        httpx.Response(429, headers={"Retry-After": "2"}, text=f"blocked {SECRET}"),
    ]
    with capture_logs() as logs:
        run(make(fake), lambda c: c.list_groups())
    retries = [e for e in logs if e["event"] == "remote.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[1]["wait"] >= 2 and retries[1]["retry_after"] == 2
    for event in retries:
        assert event["endpoint"] == "get/groups"
        assert "secret=***" in event["url"] and "/api/get/groups" in event["url"]
        assert event["log_level"] == "warning"
    assert "ConnectError" in retries[0]["cause"] and "429" in retries[1]["cause"]
    assert_no_secret(str(e) for e in logs)


# -- secrets in exceptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_exc",
    [
        lambda r: httpx.ConnectError(f"cannot connect to {r.url}", request=r),
        lambda r: httpx.ReadTimeout(f"timed out reading {r.url}", request=r),
        lambda r: httpx.RemoteProtocolError(f"peer closed {r.url!r}", request=r),
    ],
)
def test_transport_errors_never_show_the_secret(
    make_exc: Callable[[httpx.Request], Exception],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise make_exc(request)

    with capture_logs() as logs, pytest.raises(TransientError) as info:
        run(make(handler, attempts=2), lambda c: c.delete_contact(5))
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert "secret=***" in str(info.value)
    assert_no_secret(exception_texts(info.value))
    assert_no_secret(str(e) for e in logs)


def test_proxy_pages_echoing_the_url_are_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"<h1>Bad gateway</h1> upstream {request.url}")

    with pytest.raises(TransientError) as info:
        run(make(handler, attempts=1), lambda c: c.list_contacts())
    assert_no_secret(exception_texts(info.value))


# -- create is not idempotent --------------------------------------------------------------------


def stored_then(
    fake: Fake, failure: Exception | httpx.Response
) -> Callable[[httpx.Request], httpx.Response]:
    """The fake stores the contact, then the answer is lost."""

    def answer(request: httpx.Request) -> httpx.Response:
        p = params_of(request)
        fake.store_contact(p["phone"], p["name"], p["groups"].split(","))
        if isinstance(failure, Exception):
            raise failure
        return failure

    return answer


@pytest.mark.parametrize(
    "lost",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(502, text="Bad Gateway"),
        httpx.Response(200, text="<html>gateway timeout</html>"),
        envelope(500, "Something went wrong!"),
    ],
)
def test_create_recovers_when_the_lost_attempt_was_stored(lost: Exception | httpx.Response) -> None:
    fake = Fake()
    fake.script = [stored_then(fake, lost)]
    with capture_logs() as logs:
        result = run(make(fake), lambda c: c.create_contact("+15551234567", "Some One", [1]))
    assert result == WriteResult(attempts=2, recovered=True)
    assert len(fake.contacts) == 1
    assert any(e["event"] == "remote.recovered" for e in logs)


def test_create_after_a_lost_answer_that_was_not_stored_just_succeeds() -> None:
    fake = Fake()
    fake.script = [httpx.ReadTimeout("timed out")]
    result = run(make(fake), lambda c: c.create_contact("+15551234567", "Some One", [1]))
    assert result == WriteResult(attempts=2, recovered=False)


def test_phone_exists_on_the_first_attempt_is_an_error() -> None:
    fake = Fake(contacts=1)
    with pytest.raises(PhoneExists):
        run(make(fake), lambda c: c.create_contact("+12025550001", "Name 1", [1]))


@pytest.mark.parametrize(
    "unambiguous",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
        httpx.Response(429, text="slow down"),
    ],
)
def test_phone_exists_after_an_unambiguous_failure_is_an_error(
    unambiguous: Exception | httpx.Response,
) -> None:
    fake = Fake(contacts=1)
    fake.script = [unambiguous]
    client = make(fake)
    with pytest.raises(PhoneExists):
        run(client, lambda c: c.create_contact("+12025550001", "Name 1", [1]))
    assert client.requests_sent == 2


def test_create_group_checks_the_listing_before_resending() -> None:
    fake = Fake()

    def stored_then_502(request: httpx.Request) -> httpx.Response:
        fake.groups.insert(0, {"id": 77, "name": "Tom &amp; Jerry"})
        return httpx.Response(502, text="Bad Gateway")

    fake.script = [stored_then_502]
    result = run(make(fake), lambda c: c.create_group("Tom & Jerry"))
    assert result == WriteResult(attempts=2, recovered=True)
    assert fake.stats("create/group") == 1 and len(fake.groups) == 2


def test_create_group_resends_when_the_group_is_not_there() -> None:
    fake = Fake()
    fake.script = [httpx.ReadTimeout("timed out")]
    result = run(make(fake), lambda c: c.create_group("Friends"))
    assert result == WriteResult(attempts=3, recovered=False)
    assert [g["name"] for g in fake.groups] == ["Friends", "Default"]


def test_create_group_after_an_unambiguous_failure_resends_without_checking() -> None:
    fake = Fake()
    fake.script = [httpx.ConnectError("refused")]
    assert run(make(fake), lambda c: c.create_group("Friends")) == WriteResult(attempts=2)
    assert fake.stats("get/groups") == 0


# -- complete listings -------------------------------------------------------------------------

SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 40, 41, 103]


@pytest.mark.parametrize("paging", ["skipping", "standard"])
@pytest.mark.parametrize("size", SIZES)
def test_listing_is_complete_on_both_paginations(paging: str, size: int) -> None:
    fake = Fake(contacts=size, paging=paging)
    contacts = run(make(fake, page_size=4), lambda c: c.list_contacts())
    assert [c.id for c in contacts] == list(range(size, 0, -1))
    assert all(p.url.params["limit"] != "0" for p in fake.requests)


@pytest.mark.parametrize(("paging", "most"), [("skipping", 23), ("standard", 24)])
def test_large_listing_takes_few_requests(paging: str, most: int) -> None:
    fake = Fake(contacts=20_000, paging=paging)
    client = make(fake, page_size=1000)
    contacts = run(client, lambda c: c.list_contacts())
    assert len({c.id for c in contacts}) == 20_000
    assert client.requests_sent <= most
    assert max(int(r.url.params["limit"]) for r in fake.requests) == 2000


def test_small_listing_is_one_request() -> None:
    fake = Fake(contacts=1999)
    client = make(fake, page_size=1000)
    assert len(run(client, lambda c: c.list_contacts())) == 1999
    assert client.requests_sent == 1


def test_the_pagination_learned_is_remembered() -> None:
    fake = Fake(contacts=50, paging="standard")
    client = make(fake, page_size=4)

    async def twice(c: WasmsClient) -> None:
        await c.list_contacts()
        first = c.requests_sent
        await c.list_contacts()
        assert c.requests_sent - first == first - 1  # no probe the second time

    run(client, twice)


def test_deletions_during_the_listing_never_hide_a_row() -> None:
    fake = Fake(contacts=40)
    calls = []

    def delete_twice(f: Fake) -> None:
        calls.append(1)
        if len(calls) == 2:
            del f.contacts[2:4]  # above the anchor: every later window shifts by two rows

    fake.between = delete_twice
    contacts = run(make(fake, page_size=4), lambda c: c.list_contacts())
    assert [c.id for c in contacts] == [c["id"] for c in fake.contacts]
    assert [r.url.params["page"] for r in fake.requests].count("1") == 2  # torn, read again


def test_a_list_that_keeps_changing_raises_rather_than_returning_part_of_it() -> None:
    fake = Fake(contacts=40)

    def churn(f: Fake) -> None:
        if len(f.contacts) > 10:
            del f.contacts[0]

    fake.between = churn
    with pytest.raises(TransientError, match="kept changing"):
        run(make(fake, page_size=4), lambda c: c.list_contacts())


def test_contacts_added_during_the_listing_do_not_hide_others() -> None:
    fake = Fake(contacts=40)
    original = {c["id"] for c in fake.contacts}

    def grow(f: Fake) -> None:
        f.store_contact(f"+1303555{f.next_id:04d}", "New One", ["1"])

    fake.between = grow
    contacts = run(make(fake, page_size=4), lambda c: c.list_contacts())
    ids = [c.id for c in contacts]
    assert original <= set(ids) and len(ids) == len(set(ids))


# -- concurrency and rate ------------------------------------------------------------------------


def test_concurrency_is_bounded() -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return envelope(200, "Contact has been deleted!")

    client = make(handler, concurrency=5)
    results = run(client, lambda c: asyncio.gather(*(c.delete_contact(i) for i in range(60))))
    assert len(results) == 60 and peak == 5


def test_every_request_and_retry_passes_the_rate_limiter() -> None:
    clock = [0.0]

    async def fake_sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    limiter = RateLimiter(4, clock=lambda: clock[0], sleep=fake_sleep)
    failed: set[str] = set()
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock[0])
        group = request.url.params["id"]
        if int(group) < 6 and group not in failed:  # the first six fail once
            failed.add(group)
            return httpx.Response(503, text="busy")
        return envelope(200, "Contact group has been deleted!")

    client = WasmsClient(
        ClientSettings(base_url=BASE, secret=SECRET, rate=4, attempts=3),
        transport=httpx.MockTransport(handler),
        sleep=Sleeps(),
        limiter=limiter,
    )
    run(client, lambda c: asyncio.gather(*(c.delete_group(i) for i in range(10))))
    assert client.requests_sent == len(sent) == 16  # 10 deletes + 6 retries
    assert busiest_window(sent) == 4
    assert clock[0] >= 3.0  # 16 requests at 4/s: at least three full windows of waiting
