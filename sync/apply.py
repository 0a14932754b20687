"""Plan → outcomes: execute the writes concurrently, within the client's bounds, with retries.

Order matters: groups first (then listed again to learn their ids: the server returns none),
then deletes, then replaces (each deletes, then creates the same phone: a delete frees the
quota slot its create needs), then creates. A quota error stops every create not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sync.errors import ConfigError, QuotaReached, SyncError
from sync.groups import GroupIndex, resolve
from sync.logs import get_logger, redact
from sync.models import RemoteGroup
from sync.plan import Entry, Plan

log = get_logger("sync.apply")

Status = Literal["done", "recovered", "failed", "not_attempted", "unverified"]
Progress = Callable[[int, int], None]


class WriteResultLike(Protocol):
    @property
    def attempts(self) -> int: ...
    @property
    def recovered(self) -> bool: ...


class Writer(Protocol):
    """What apply needs of the remote client."""

    async def create_contact(
        self, phone: str, name: str, groups: Sequence[int]
    ) -> WriteResultLike: ...
    async def delete_contact(self, contact_id: int) -> WriteResultLike: ...
    async def create_group(self, name: str) -> WriteResultLike: ...
    async def delete_group(self, group_id: int) -> WriteResultLike: ...
    async def list_groups(self) -> list[RemoteGroup]: ...


@dataclass(slots=True)
class Outcome:
    """What happened to one planned write."""

    entry: Entry
    status: Status = "not_attempted"
    attempts: int = 0
    reason: str = ""
    group_ids: tuple[int, ...] = ()
    remote_id: int | None = None  # the id the verification listing shows (creates get one)


@dataclass(slots=True)
class ApplyResult:
    outcomes: list[Outcome]
    groups_created: dict[str, int] = field(default_factory=dict)
    group_failures: dict[str, str] = field(default_factory=dict)
    quota_reached: bool = False
    seconds: float = 0.0

    def count(self, *statuses: Status) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)


@dataclass(slots=True)
class Stop:
    """A request to stop (the engine sets it on SIGINT or SIGTERM): writes not yet sent are not
    attempted, the ones in flight finish, and apply returns as usual."""

    reason: str | None = None
    signal: int | None = None


def unclaimed_signals() -> tuple[signal.Signals, ...]:
    """SIGINT and SIGTERM, if they still have their default handling when the run starts (a
    program that calls the library with handlers of its own keeps them), and only in the main
    thread, where handlers can be set."""
    if threading.current_thread() is not threading.main_thread():
        return ()
    defaults = (signal.SIG_DFL, signal.default_int_handler)
    return tuple(s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) in defaults)


@contextlib.contextmanager
def stop_on_signals(stop: Stop, signals: Sequence[signal.Signals]) -> Iterator[None]:
    """While the writes run, SIGINT or SIGTERM (Ctrl-C, a cron or systemd timeout) asks them to
    stop: writes in flight finish, the rest are not attempted, and the run writes its report.
    A second signal acts as usual (stops at once): the handlers go at the first, leaving the
    default ones, which these signals had when the run started (`unclaimed_signals`)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def asked(signum: int) -> None:
        name = signal.Signals(signum).name
        stop.reason, stop.signal = f"the run was stopped ({name})", signum
        log.warning("apply.stopping", signal=name)
        for sig in installed:
            loop.remove_signal_handler(sig)  # the next one acts as it would without us
        installed.clear()

    for sig in signals:
        try:
            loop.add_signal_handler(sig, asked, sig)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
    return redact(text)


def _attempts_of(exc: BaseException) -> int:
    value = getattr(exc, "attempts", 1)
    return value if isinstance(value, int) else 1


class _Runner:
    def __init__(
        self,
        client: Writer,
        total: int,
        progress: Progress | None,
        concurrency: int,
        stop: Stop | None = None,
    ) -> None:
        self.client = client
        self.stop = stop or Stop()
        # Bounded here too (not only in the client) so that a create decides whether to go
        # ahead only when it is about to be sent: a quota error then stops every later one.
        self.slots = asyncio.Semaphore(concurrency)
        self.total = total
        self.done = 0
        self.progress = progress
        self.quota_reached = False
        self._last_log = time.monotonic()

    def _tick(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)
        now = time.monotonic()
        if now - self._last_log >= 5 or self.done == self.total:
            self._last_log = now
            log.info("apply.progress", done=self.done, total=self.total)

    async def delete(self, out: Outcome) -> None:
        assert out.entry.remote_id is not None
        async with self.slots:
            await self._delete(out)

    def _stopped(self, out: Outcome) -> bool:
        """Mark `out` not attempted when a stop was asked for (before anything is sent)."""
        if self.stop.reason is None:
            return False
        out.reason = f"not attempted: {self.stop.reason}"
        self._tick()
        return True

    async def _delete(self, out: Outcome) -> None:
        assert out.entry.remote_id is not None
        if self._stopped(out):
            return
        try:
            res = await self.client.delete_contact(out.entry.remote_id)
            out.status, out.attempts = "done", res.attempts
        except Exception as exc:
            out.status, out.attempts, out.reason = "failed", _attempts_of(exc), _describe(exc)
            log.warning("apply.delete_failed", phone=out.entry.phone, reason=out.reason)
        self._tick()

    async def create(self, out: Outcome, *, after_delete: bool = False) -> None:
        async with self.slots:
            await self._create(out, after_delete=after_delete)

    async def _create(self, out: Outcome, *, after_delete: bool) -> None:
        if self.quota_reached or self.stop.reason is not None:
            why = self.stop.reason or "the account's contact quota is full"
            out.reason = f"not attempted: {why}"
            if after_delete:
                out.status = "failed"
                out.reason = "the old contact was deleted, but " + out.reason
            self._tick()
            return
        try:
            res = await self.client.create_contact(out.entry.phone, out.entry.name, out.group_ids)
            out.attempts += res.attempts
            out.status = "recovered" if res.recovered else "done"
            if res.recovered:
                out.reason = "an earlier attempt's answer was lost; the retry found it stored"
        except QuotaReached as exc:
            self.quota_reached = True
            out.status, out.reason = "failed", _describe(exc)
            out.attempts += 1
            log.error("apply.quota_reached", phone=out.entry.phone)
        except Exception as exc:
            out.status, out.reason = "failed", _describe(exc)
            out.attempts += _attempts_of(exc)
            log.warning("apply.create_failed", phone=out.entry.phone, reason=out.reason)
        if after_delete and out.status == "failed":
            out.reason = "the old contact was deleted, but creating the new one failed: " + (
                out.reason
            )
        self._tick()

    async def replace(self, out: Outcome) -> None:
        assert out.entry.remote_id is not None
        if self._stopped(out):
            return
        try:
            async with self.slots:
                res = await self.client.delete_contact(out.entry.remote_id)
            out.attempts = res.attempts
        except Exception as exc:
            out.status, out.attempts = "failed", _attempts_of(exc)
            out.reason = "delete of the old contact failed: " + _describe(exc)
            self._tick()
            return
        await self.create(out, after_delete=True)


async def _ensure_groups(client: Writer, plan: Plan, result: ApplyResult) -> GroupIndex:
    """Create the plan's missing groups; list groups again; undo duplicates our retries made."""
    for name in plan.group_creates:
        try:
            await client.create_group(name)
        except Exception as exc:
            result.group_failures[name] = _describe(exc)
            log.error("apply.group_failed", group=name, reason=result.group_failures[name])
    groups = await client.list_groups()
    extras: set[int] = set()
    for name in plan.group_creates:
        ids = sorted(g.id for g in groups if g.name.strip() == name)
        if ids:
            result.groups_created[name] = ids[0]
            result.group_failures.pop(name, None)  # the answer was lost, the group is there
        for extra in ids[1:]:  # a retried create_group made a second one: remove it
            await client.delete_group(extra)
            extras.add(extra)
            log.warning("apply.duplicate_group_removed", group=name, id=extra, kept=ids[0])
    return GroupIndex.build(g for g in groups if g.id not in extras)


async def apply_plan(
    plan: Plan,
    client: Writer,
    *,
    progress: Progress | None = None,
    concurrency: int = 16,
    stop: Stop | None = None,
) -> ApplyResult:
    """Execute every write of the plan; never raises for a single failed write. Once `stop` is
    set, the writes not yet sent are not attempted."""
    started = time.monotonic()
    writes = plan.writes
    result = ApplyResult([Outcome(e) for e in writes])
    index = await _ensure_groups(client, plan, result) if plan.group_creates else None
    if index is None:
        index = GroupIndex.build(await client.list_groups()) if writes else GroupIndex.build([])
    runner = _Runner(client, len(writes), progress, concurrency, stop)

    by_action: dict[str, list[Outcome]] = {"delete": [], "replace": [], "create": []}
    for out in result.outcomes:
        if out.entry.action != "delete":
            try:
                ids = resolve(out.entry.groups, index)
            except ConfigError as exc:
                ids, out.reason = None, str(exc)
            if ids is None:
                out.status = "failed"
                out.reason = out.reason or "a group could not be created: " + "; ".join(
                    f"{n}: {r}" for n, r in result.group_failures.items()
                )
                runner._tick()
                continue
            out.group_ids = ids
        by_action[out.entry.action].append(out)

    log.info(
        "apply.start", **{k: len(v) for k, v in by_action.items()}, groups=len(plan.group_creates)
    )
    await asyncio.gather(*(runner.delete(o) for o in by_action["delete"]))
    await asyncio.gather(*(runner.replace(o) for o in by_action["replace"]))
    await asyncio.gather(*(runner.create(o) for o in by_action["create"]))
    result.quota_reached = runner.quota_reached
    result.seconds = time.monotonic() - started
    log.info(
        "apply.done",
        seconds=round(result.seconds, 3),
        failed=result.count("failed"),
        not_attempted=result.count("not_attempted"),
    )
    return result
