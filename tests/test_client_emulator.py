"""WasmsClient against the emulator: in-process (httpx.ASGITransport) and over a real loopback
socket (uvicorn in a thread). The emulator pages with the real server's off-by-one."""

from __future__ import annotations

import asyncio
import importlib.abc
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from sync.emulator import Faults, Store, create_app, run_in_thread
from sync.emulator.app import EmulatorApp
from sync.emulator.faults import LostAs
from sync.errors import AuthError, PermissionDenied, PhoneExists, QuotaReached, TransientError
from sync.models import OptOut, RemoteContact, RemoteGroup
from sync.remote import ClientSettings, WasmsClient, WriteResult
from tests.fakes import Sleeps

Call = Callable[[WasmsClient], Awaitable[Any]]


def phone(i: int) -> str:
    return f"+92300{i:07d}"  # valid Pakistani mobiles, E.164


def in_process(
    app: EmulatorApp,
    call: Call,
    *,
    secret: str | None = None,
    sleeps: Sleeps | None = None,
    **opts: Any,
) -> Any:
    """Run `call` with a client wired to `app` through httpx.ASGITransport (no socket)."""
    settings = ClientSettings(
        base_url="http://127.0.0.1/api/", secret=secret or app.store.secret, **opts
    )

    async def go() -> Any:
        transport = httpx.ASGITransport(app=app)
        sleep = sleeps if sleeps is not None else Sleeps()
        async with WasmsClient(settings, transport=transport, sleep=sleep) as client:
            return await call(client)

    return asyncio.run(go())


@pytest.fixture
def app() -> EmulatorApp:
    return create_app(Store(), seed=7)


@pytest.fixture
def served(app: EmulatorApp) -> Iterator[str]:
    with run_in_thread(app) as base_url:
        yield base_url


def over_loopback(base_url: str, secret: str, call: Call, **opts: Any) -> Any:
    async def go() -> Any:
        settings = ClientSettings(base_url=base_url, secret=secret, **opts)
        async with WasmsClient(settings, sleep=Sleeps()) as client:
            return await call(client)

    return asyncio.run(go())


async def round_trip(client: WasmsClient) -> tuple[list[RemoteGroup], list[RemoteContact]]:
    assert await client.create_group("Tom & Jerry's <Club>") == WriteResult(attempts=1)
    groups = await client.list_groups()
    gid = groups[0].id
    assert await client.create_contact(phone(1), 'Ann "A" & Co', [gid]) == WriteResult(1)
    await client.create_contact(phone(2), "Bob Builder", [gid])
    contacts = await client.list_contacts()
    await client.delete_contact(contacts[-1].id)
    return groups, await client.list_contacts()


def check_round_trip(result: tuple[list[RemoteGroup], list[RemoteContact]]) -> None:
    groups, contacts = result
    assert [g.name for g in groups] == ["Tom & Jerry's <Club>"]
    gid = groups[0].id
    assert contacts == [RemoteContact(contacts[0].id, phone(2), "Bob Builder", (gid,))]


def test_round_trip_in_process(app: EmulatorApp) -> None:
    check_round_trip(in_process(app, round_trip))
    assert app.store.contacts()[0]["name"] == "Bob Builder"


def test_round_trip_over_loopback(app: EmulatorApp, served: str) -> None:
    check_round_trip(over_loopback(served, app.store.secret, round_trip))


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every module the import system searches for (a module already imported is not
    searched again; one that cannot be found is searched at every import)."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        self.searched.append(name)


def test_requests_search_for_no_module(
    app: EmulatorApp, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once warm, requests over loopback import nothing. httpcore imports sniffio while it sets
    up each lock and event; without sniffio installed (anyio no longer requires it) every one of
    those was a failed import walking sys.path, ~20% of the client's CPU per write."""
    recorder = _ImportRecorder()
    gid = app.store.add_group("Everyone")

    async def writes(client: WasmsClient) -> None:
        await client.create_contact(phone(0), "Warm Up", [gid])  # first use may import lazily
        monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
        await asyncio.gather(
            *(client.create_contact(phone(i), f"Person {i}", [gid]) for i in range(1, 40))
        )
        await client.list_contacts()

    over_loopback(served, app.store.secret, writes, concurrency=4)
    assert recorder.searched == []
    assert len(app.store.contacts()) == 40


def test_plus_reaches_the_emulator_and_names_come_back_unescaped(app: EmulatorApp) -> None:
    gid = app.store.add_group("Default")

    async def go(client: WasmsClient) -> list[RemoteContact]:
        await client.create_contact("+639184661538", "Tom & Jerry", [gid])
        return await client.list_contacts()

    (contact,) = in_process(app, go)
    assert contact.phone == "+639184661538" and contact.name == "Tom & Jerry"
    assert app.store.contacts()[0]["name"] == "Tom &amp; Jerry"  # stored escaped


@pytest.mark.parametrize("size", [0, 1, 199, 200, 201, 299, 300, 301, 399, 400, 401, 2345])
def test_complete_listing_despite_the_off_by_one(app: EmulatorApp, size: int) -> None:
    gid = app.store.add_group("Everyone")
    for i in range(size):
        app.store.add_contact(phone(i), f"Person {i}", [gid, ""] if i % 2 else [gid])

    def listing(c: WasmsClient) -> Any:
        return c.list_contacts()

    contacts = in_process(app, listing, page_size=100)
    assert len(contacts) == size == len({c.phone for c in contacts})
    assert all(c.groups == (gid,) for c in contacts)


def test_listings_of_groups_and_optouts(app: EmulatorApp) -> None:
    for i in range(30):
        app.store.add_group(f"Group {i:02d}")
        app.store.add_optout(phone(i), created=1_700_000_000 + i // 3)  # ties in `created`

    async def go(client: WasmsClient) -> tuple[list[RemoteGroup], list[OptOut]]:
        return await client.list_groups(), await client.list_unsubscribed()

    groups, optouts = in_process(app, go, page_size=4)
    assert len(groups) == 30 and len({o.id for o in optouts}) == 30
    assert optouts[0].created == 1_700_000_009


def test_permissions_quota_and_auth(app: EmulatorApp) -> None:
    gid = app.store.add_group("Default")
    reader = app.store.add_key("reader-key-0001", ["get_contacts", "get_groups"])
    with pytest.raises(PermissionDenied) as info:
        in_process(app, lambda c: c.create_contact(phone(1), "Some One", [gid]), secret=reader)
    assert info.value.permission == "create_contact"
    with pytest.raises(AuthError):
        in_process(app, lambda c: c.list_groups(), secret="not-a-key")

    small = create_app(Store(quota=1), seed=1)
    sgid = small.store.add_group("Default")
    assert in_process(small, lambda c: c.create_contact(phone(1), "Some One", [sgid]))
    with pytest.raises(QuotaReached):
        in_process(small, lambda c: c.create_contact(phone(2), "Other One", [sgid]))


def test_proxy_429_with_retry_after_is_waited_and_retried(app: EmulatorApp) -> None:
    app.set_faults(Faults(p429=1.0, times=2, retry_after=3))
    sleeps = Sleeps()
    assert in_process(app, lambda c: c.list_groups(), sleeps=sleeps) == []
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps)


@pytest.mark.parametrize("lost_as", ["drop", "502"])
def test_lost_create_answer_is_recovered_in_process(app: EmulatorApp, lost_as: LostAs) -> None:
    gid = app.store.add_group("Default")
    app.set_faults(Faults(lost=1.0, lost_as=lost_as, times=1, scope="writes"))
    result = in_process(app, lambda c: c.create_contact(phone(5), "Some One", [gid]))
    assert result == WriteResult(attempts=2, recovered=True)
    assert len(app.store.contacts()) == 1


def test_lost_create_answer_is_recovered_over_loopback(app: EmulatorApp, served: str) -> None:
    gid = app.store.add_group("Default")
    app.set_faults(Faults(lost=1.0, lost_as="drop", times=1, scope="writes"))
    result = over_loopback(
        served, app.store.secret, lambda c: c.create_contact(phone(6), "Some One", [gid])
    )
    assert result == WriteResult(attempts=2, recovered=True)
    with pytest.raises(PhoneExists):  # a later, unrelated attempt is a plain duplicate
        over_loopback(
            served, app.store.secret, lambda c: c.create_contact(phone(6), "Some One", [gid])
        )


def test_lost_create_group_answer_makes_no_duplicate(app: EmulatorApp) -> None:
    app.set_faults(Faults(lost=1.0, lost_as="drop", times=1, scope="writes"))
    result = in_process(app, lambda c: c.create_group("Friends"))
    assert result.recovered and [g["name"] for g in app.store.groups()] == ["Friends"]


def test_many_writes_in_flight_with_faults(app: EmulatorApp, served: str) -> None:
    gid = app.store.add_group("Default")
    # a write fails 20% of the time; 10 attempts make a give-up a ~1e-7 event per write
    app.set_faults(Faults(p429=0.05, p503=0.05, lost=0.1, lost_as="either", scope="writes"))

    async def go(client: WasmsClient) -> list[WriteResult]:
        return list(
            await asyncio.gather(
                *(client.create_contact(phone(i), f"Person {i}", [gid]) for i in range(120))
            )
        )

    results = over_loopback(served, app.store.secret, go, concurrency=16, attempts=10)
    assert len(results) == 120 and len(app.store.contacts()) == 120
    assert any(r.recovered for r in results) and any(r.attempts > 1 for r in results)


def test_the_secret_stays_out_of_errors_and_logs_over_a_real_socket() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "loopback-secret-123"
    with capture_logs() as logs, pytest.raises(TransientError) as info:
        over_loopback(f"http://127.0.0.1:{port}/api/", secret, lambda c: c.delete_group(1))
    texts = ["".join(traceback.format_exception(info.value)), repr(info.value), *map(str, logs)]
    assert len([e for e in logs if e["event"] == "remote.retry"]) == 4
    assert all(secret not in t for t in texts)
    assert "secret=***" in str(info.value)
