"""The library API: `plan()` and `apply()` run the whole pipeline and return a RunResult.

    read + normalise (ingest) ─┬→ plan → guards → [apply → verify] → report
    list the remote ───────────┘   (the two at once: the read on a thread)

An orchestrator calls these directly; the CLI is a thin shell over them. Errors are raised as
the SyncError tree (each carries its exit code); a report is written whenever there is something
to report, including when a guard refuses the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import gc
import hashlib
import json
import os
import platform
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import orjson
import phonenumbers
import structlog

from sync import __version__
from sync.apply import (
    ApplyResult,
    Outcome,
    Stop,
    apply_plan,
    stop_on_signals,
    unclaimed_signals,
)
from sync.errors import (
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    OutputError,
    PermissionDenied,
    StalePlanError,
    SyncError,
    TransientError,
)
from sync.files import DirectWriter, atomic_path, private_dir
from sync.lock import account_lock, lock_path
from sync.logs import get_logger, register_secret
from sync.mapping import load_mapping
from sync.models import IngestResult, OptOut, RemoteContact, RemoteGroup
from sync.plan import Plan, check_guards, fingerprint, make_plan, origin_columns
from sync.remote import ClientSettings, WasmsClient
from sync.report import (
    BATCH,
    RecordBatch,
    issue_batches,
    open_records,
    sheet_cell,
    summary_markdown,
    write_rejected,
    write_summary_md,
)
from sync.settings import Settings, default_report_dir
from sync.snapshot import ingest_cached
from sync.table import column, each
from sync.verify import VerifyResult, verify

log = get_logger("sync.engine")
_T = TypeVar("_T")
_Reading = Callable[[], tuple[IngestResult, bool]]  # reads the sources: result, from the snapshot?
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class RunResult:
    """What a run did: its summary (as in report.json), where the report is, the exit code."""

    command: str
    run_id: str
    exit_code: int
    summary: dict[str, Any]
    report_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def asdict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "report_dir": str(self.report_dir),
            "files": {k: str(v) for k, v in self.files.items()},
        }


@dataclass(slots=True)
class _Run:
    """The state of one run as it moves through the stages."""

    command: str
    settings: Settings
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    timings: dict[str, float] = field(default_factory=dict)
    ingested: IngestResult | None = None
    plan: Plan | None = None
    remote_count: int = 0
    applied: ApplyResult | None = None
    verified: VerifyResult | None = None
    refused: str | None = None
    stopped: Stop | None = None  # a signal asked the writes to stop
    signals: tuple[signal.Signals, ...] = ()  # the ones apply may handle (`unclaimed_signals`)
    region: str | None = None  # the mapping's default region, to read non-E.164 remote phones
    valid: int = 0  # valid contacts from the sources (kept once the ingest copies are dropped)
    probe_requests: dict[str, int] = field(default_factory=dict)  # permission checks sent
    requests: dict[str, int] = field(default_factory=dict)  # every request of the run

    def timed(self, stage: str, t0: float) -> None:
        self.timings[stage] = round(time.monotonic() - t0, 3)

    @property
    def report_dir(self) -> Path:
        return self.settings.report_dir or _DEFAULT_DIRS.setdefault(
            self.run_id, default_report_dir()
        )


_DEFAULT_DIRS: dict[str, Path] = {}


def plan(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> RunResult:
    """Read, normalise, list the remote, diff; write the report and plan.json. Sends no write."""
    return _run("plan", settings, transport, None)


def apply(
    settings: Settings,
    *,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunResult:
    """Plan (or load `settings.plan_path`), then execute, verify and write the reconciliation."""
    return _run("apply", settings, transport, progress)


def account_digest(settings: Settings) -> str:
    raw = f"{settings.base_url}\0{settings.secret.reveal()}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _run(
    command: str,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
) -> RunResult:
    register_secret(settings.secret.reveal())
    run = _Run(command, settings, signals=unclaimed_signals())
    structlog.contextvars.bind_contextvars(run_id=run.run_id)
    with _collector_paused():
        try:
            return _stages(run, command, settings, transport, progress)
        finally:
            if _LEFT_TO_EXIT is not None:
                _LEFT_TO_EXIT.append(run)
            else:
                # the rows go before the collector runs once over what is left: scanning a
                # million live objects only to keep them cost ~0.4 s at the end of a 1M-row run
                run.ingested = run.plan = run.applied = run.verified = None


_LEFT_TO_EXIT: list[_Run] | None = None  # see `leave_memory_to_exit`


def leave_memory_to_exit() -> None:
    """For a process that ends right after its run, by `os._exit` (the command line): from now
    on a run's rows are kept when it returns, rather than freed one object at a time, and the
    end of the process hands all of it back to the OS at once. At a million rows that is ~0.1 s
    of deallocation, and then the interpreter's own teardown. A library caller that goes on
    living must not call it: its runs' memory would never be freed."""
    global _LEFT_TO_EXIT
    if _LEFT_TO_EXIT is None:
        _LEFT_TO_EXIT = []


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A run allocates millions of small objects and makes no reference cycles worth chasing:
    the cyclic collector would rescan them over and over (measured: a third of planning time at
    a million rows). Paused for the run, then run once over what is left; or, when the run's
    rows are left to the exit, those are frozen out of the collector's sight instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _LEFT_TO_EXIT is not None:
            gc.freeze()
        else:
            gc.collect()
        if enabled:
            gc.enable()


def _stages(
    run: _Run,
    command: str,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
) -> RunResult:
    try:
        log.info("run.start", command=command, mode=settings.mode, version=__version__)
        _check_report_dir(run.report_dir)
        saved = _load_saved_plan(settings) if settings.plan_path else None
        reading: _Reading | None = None
        if saved is None:
            mapping = load_mapping(settings.mapping, region=settings.region, groups=settings.groups)
            run.region = mapping.default_region
            sources, cache = list(settings.sources), settings.home / "cache"
            reading = functools.partial(ingest_cached, sources, mapping, cache)
        if command == "plan":
            asyncio.run(_remote_stages(run, saved, reading, transport, progress))
        else:
            lock = lock_path(settings.home, settings.base_url, settings.secret.reveal())
            with account_lock(lock, run_id=run.run_id) as held:
                if held.stale_holder:
                    log.warning("lock.stale_recovered", previous=held.stale_holder)
                asyncio.run(_remote_stages(run, saved, reading, transport, progress))
        return _finish(run)
    except SyncError as exc:
        if run.plan is not None and exc.report_dir is None and not isinstance(exc, OutputError):
            run.refused = str(exc)
            with contextlib.suppress(OutputError):  # the refusal is the error to report
                exc.report_dir = str(_write_reports(run)[0])
        log.error("run.failed", error=str(exc), exit_code=exc.exit_code)
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id")


def _load_saved_plan(settings: Settings) -> Plan:
    assert settings.plan_path is not None
    path = settings.plan_path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        saved = Plan.from_json(data["plan"])
        account = data["account"]
    except OSError as exc:
        raise ConfigError(
            f"--plan: cannot read {path}: {exc.strerror}",
            hint="pass the plan.json a `contact-sync plan` run wrote",
        ) from None
    except (ValueError, KeyError, TypeError, IndexError):
        raise ConfigError(
            f"--plan: {path} is not a contact-sync plan file",
            hint="pass the plan.json a `contact-sync plan` run wrote",
        ) from None
    if account != account_digest(settings):
        raise ConfigError(
            "--plan: this plan was made for another account or base URL",
            hint="apply it with the same WASMS_BASE_URL and secret it was planned with",
        )
    return saved


async def _remote_stages(
    run: _Run,
    saved: Plan | None,
    reading: _Reading | None,
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
) -> None:
    s = run.settings
    client_settings = ClientSettings(
        base_url=s.base_url,
        secret=s.secret.reveal(),
        timeout=s.timeout,
        attempts=s.attempts,
        concurrency=s.concurrency,
        rate=s.rate,
    )
    async with WasmsClient(client_settings, transport=transport) as client:
        try:
            await _with_client(run, client, saved, reading, progress)
        finally:
            run.requests = dict(sorted(client.requests_by_endpoint.items()))


async def _with_client(
    run: _Run,
    client: WasmsClient,
    saved: Plan | None,
    reading: _Reading | None,
    progress: Progress | None,
) -> None:
    s = run.settings
    contacts, groups, optouts = await _read_and_list(run, client, reading)
    t0 = time.monotonic()
    if saved is not None:
        run.plan = saved
        if fingerprint(contacts, groups, optouts) != saved.fingerprint:
            raise StalePlanError(
                "the remote has changed since this plan was made; refusing to apply it",
                hint="make a fresh plan (contact-sync plan ...) and review it",
            )
        check_guards(
            saved,
            rows_read=saved.counts.get("rows_read", 0),
            valid=saved.counts.get("valid", 1),
            invalid=0,
            max_delete=s.max_delete,
            max_invalid=s.max_invalid,
        )
    else:
        assert run.ingested is not None
        ing = run.ingested
        run.plan = make_plan(
            ing.contacts,
            contacts,
            groups,
            optouts,
            mode=s.mode,
            scope_groups=s.scope_groups,
            replace_changed=s.replace_changed,
            fallback_group=s.fallback_group,
            region=run.region,
        )
        invalid = column(ing.issues, "kind").count("invalid")
        run.plan.counts.update(rows_read=ing.rows_read, valid=len(ing.contacts))
        run.valid = len(ing.contacts)
        # The plan's entries carry all the report needs of each contact: drop the ingest
        # copies now (at a million rows, a few hundred MB of peak memory).
        run.ingested = ing = dataclasses.replace(ing, contacts=())
        run.timed("plan", t0)
        check_guards(
            run.plan,
            rows_read=ing.rows_read,
            valid=run.valid,
            invalid=invalid,
            max_delete=s.max_delete,
            max_invalid=s.max_invalid,
        )
    if run.command == "plan":
        return
    before = dict(client.requests_by_endpoint)
    await _check_permissions(client, run.plan)  # a 403 now, not after the first write
    run.probe_requests = {
        ep: n - before.get(ep, 0)
        for ep, n in client.requests_by_endpoint.items()
        if n != before.get(ep, 0)
    }
    _write_plan(run)  # the exact plan being executed sits beside its report
    t0 = time.monotonic()
    stop = Stop()
    with stop_on_signals(stop, run.signals):
        run.applied = await apply_plan(
            run.plan, client, progress=progress, concurrency=s.concurrency, stop=stop
        )
    run.timed("apply", t0)
    t0 = time.monotonic()
    skipped: VerifyResult | None = None
    if stop.reason is not None:
        # asked to stop: report what was done now rather than list the whole remote again
        run.stopped = stop
        skipped = VerifyResult(ok=False, checked=0, skipped=f"{stop.reason}: not verified")
    elif not run.applied.outcomes and not run.applied.groups_created:
        # nothing was sent, so nothing can differ from the listing this plan was made against:
        # a nightly run over unchanged data does not list a million contacts a second time
        skipped = VerifyResult(ok=True, checked=0, skipped="nothing was written")
    if skipped is not None:
        run.verified = skipped
        (log.info if skipped.ok else log.warning)("verify.skipped", reason=skipped.skipped)
        run.timed("verify", t0)
        return
    try:
        listing = await client.list_contacts()
    except SyncError as exc:
        log.error("verify.listing_failed", error=str(exc))
        run.verified = VerifyResult(
            ok=False, checked=0, problems={-1: f"the verification listing failed: {exc}"}
        )
    else:
        run.verified = verify(run.applied, listing)
    run.timed("verify", t0)


async def _read_and_list(
    run: _Run, client: WasmsClient, reading: _Reading | None
) -> tuple[list[RemoteContact], list[RemoteGroup], list[OptOut]]:
    """The remote's listings, and the sources read (`reading`) on a thread meanwhile.

    The listings mostly wait on the network (0.1 s on loopback; seconds for 100k contacts
    against a distant server), so they run while the sources are read or the snapshot loaded.
    A source's error wins over the listing's, as when one ran after the other: the listing is
    then cancelled (it only reads)."""
    listing = asyncio.ensure_future(_timed_listing(run, client))
    if reading is not None:
        t0 = time.monotonic()
        try:
            ingested, unchanged = await _on_a_thread(reading)
        except BaseException:
            listing.cancel()
            await asyncio.gather(listing, return_exceptions=True)
            raise
        run.ingested = ingested
        run.timed("read", t0)
        log.info(
            "ingest.done",
            snapshot=unchanged,
            rows=ingested.rows_read,
            valid=len(ingested.contacts),
            issues=len(ingested.issues),
        )
    return await listing


async def _timed_listing(
    run: _Run, client: WasmsClient
) -> tuple[list[RemoteContact], list[RemoteGroup], list[OptOut]]:
    t0 = time.monotonic()
    contacts, groups, optouts = await _list_remote(client)
    run.remote_count = len(contacts)
    run.timed("list", t0)
    log.info("remote.listed", contacts=len(contacts), groups=len(groups), optouts=len(optouts))
    return contacts, groups, optouts


def _on_a_thread(fn: Callable[[], _T]) -> asyncio.Future[_T]:
    """`fn()` on a daemon thread of its own, in this context (the run's log fields).

    Not the loop's executor: when the run is interrupted (Ctrl-C), `asyncio.run` would wait for
    an executor's threads, and a 1M-row read goes on for seconds; a daemon thread is left to
    end with the process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            (future.set_result if ok else future.set_exception)(value)

    def work() -> None:
        outcome: tuple[bool, Any]
        try:
            outcome = (True, context.run(fn))
        except BaseException as exc:  # handed to the awaiting task, raised there
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits it
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name="contact-sync-read", daemon=True).start()
    return future


async def _list_remote(
    client: WasmsClient,
) -> tuple[list[RemoteContact], list[RemoteGroup], list[OptOut]]:
    """The three listings, concurrently. When the key lacks several permissions, one message
    names them all (the order the listings fail in is a race; the message must not be)."""
    results = await asyncio.gather(
        client.list_contacts(),
        client.list_groups(),
        client.list_unsubscribed(),
        return_exceptions=True,
    )
    _raise_first(results)
    contacts, groups, optouts = results
    return contacts, groups, optouts  # type: ignore[return-value]


async def _check_permissions(client: WasmsClient, plan: Plan) -> None:
    """Probe the write endpoints the plan needs (a probe cannot write: see the client)."""
    needed = {"create/group"} if plan.group_creates else set()
    for e in plan.writes:
        needed |= _ENDPOINTS_OF[e.action]
    results = await asyncio.gather(
        *(client.check_permission(ep) for ep in sorted(needed)), return_exceptions=True
    )
    for endpoint, result in zip(sorted(needed), results, strict=True):
        if isinstance(result, TransientError):  # no answer is not a refusal: the writes will tell
            log.warning("permission.unknown", endpoint=endpoint, error=str(result))
    _raise_first([r for r in results if not isinstance(r, TransientError)])


_ENDPOINTS_OF = {
    "create": {"create/contact"},
    "delete": {"delete/contact"},
    "replace": {"delete/contact", "create/contact"},
}


def _raise_first(results: Sequence[object]) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    denied = [e for e in errors if isinstance(e, PermissionDenied)]
    if len(denied) > 1 and len(denied) == len(errors):
        names = ", ".join(f"`{e.permission}`" for e in denied)
        raise PermissionDenied(
            f"this API key lacks the {names} permissions this run needs",
            permission=denied[0].permission,
            hint=f"in the WaSMS dashboard, edit the key and tick {names}, or use a key that "
            "has them",
        )
    if errors:
        raise errors[0]


def _write_plan(run: _Run) -> Path:
    """plan.json, streamed a column per line: a million-write plan never sits in memory as one
    JSON document (that alone was ~300 MB of peak memory), only one column's text at a time."""
    assert run.plan is not None
    meta = {
        "contact_sync": __version__,
        "made_at": run.started_at,
        "run_id": run.run_id,
        "account": account_digest(run.settings),
        "sources": [str(p) for p in run.settings.sources],
    }
    body = run.plan.to_json()
    columns = body.pop("columns")
    path = private_dir(run.report_dir) / "plan.json"
    with atomic_path(path) as tmp, DirectWriter(tmp) as fh:
        fh.write(orjson.dumps(meta)[:-1] + b',\n"plan": ' + orjson.dumps(body)[:-1])
        fh.write(b',\n"columns": {')
        for i, (name, values) in enumerate(columns.items()):
            fh.write((b"\n" if i == 0 else b",\n") + orjson.dumps(name) + b": ")
            fh.write(orjson.dumps(values))  # not joined to the rest: a copy of up to ~20 MB
        fh.write(b"\n}}}\n")
    return path


_SETTLED_OUTCOME = {
    "unchanged": "unchanged",
    "keep": "kept",
    "drift": "skipped",
    "skip_optout": "skipped",
}


def _entry_batches(run: _Run) -> Iterator[RecordBatch]:
    """The report's records of the plan entries (source rows and remote-only contacts), a batch
    at a time, from the entries' columns; only the few entries an apply touched are patched
    one by one (found by action and phone: the plan has one write per phone)."""
    outcomes: dict[tuple[str, str], Outcome] = {}
    if run.applied:
        outcomes = {(o.entry.action, o.entry.phone): o for o in run.applied.outcomes}
    unapplied = "planned" if run.command == "plan" else "not_attempted"
    # an action's outcome, looked up in C (a saved plan's unknown action: `unapplied`, as before)
    outcome_of = defaultdict(lambda: unapplied, _SETTLED_OUTCOME)
    entries = run.plan.entries if run.plan is not None else ()
    # only the columns the report shows, sliced a batch at a time (not every field's)
    shown = dict(zip(("file", "sheet", "row"), origin_columns(entries), strict=True))
    shown.update((f, column(entries, f)) for f in _SHOWN)
    for at in range(0, len(entries), BATCH):
        cut = {f: values[at : at + BATCH] for f, values in shown.items()}
        yield RecordBatch(_entry_columns(cut, outcomes, outcome_of))


_SHOWN: Final = ("raw_phone", "phone", "name", "groups", "action", "reason", "remote_id")
_AHEAD: Final = 4 * BATCH  # at most this many issue records are made before the entries'


def _record_batches(run: _Run) -> tuple[Iterable[RecordBatch], list[RecordBatch]]:
    """The report's records, a batch at a time: the plan entries, then the invalid and duplicate
    rows; and those last batches, made first (`open_records`' tail) unless there are more than
    `_AHEAD` of them (a file of a million invalid rows streams them as before: bounded memory)."""
    issues = run.ingested.issues if run.ingested is not None else ()
    if len(issues) > _AHEAD:
        return chain(_entry_batches(run), issue_batches(issues)), []
    tail = list(issue_batches(issues))
    return chain(_entry_batches(run), tail), tail


def _entry_columns(
    cols: dict[str, Sequence[Any]],
    outcomes: dict[tuple[str, str], Outcome],
    outcome_of: dict[str, str],
) -> list[Sequence[Any]]:
    """A batch of entries' report columns, in `COLUMNS` order, from their plan columns."""
    n = len(cols["file"])
    actions, reasons, remote_ids, phones = (
        cols[f] for f in ("action", "reason", "remote_id", "phone")
    )
    outcome = each(outcome_of.__getitem__, actions)
    attempts = [0] * n
    if outcomes:
        reasons, remote_ids = list(reasons), list(remote_ids)
        found = list(map(outcomes.get, zip(actions, phones, strict=True)))
        for k, out in enumerate(found):
            if out is None:
                continue
            outcome[k], attempts[k] = out.status, out.attempts
            reasons[k] = out.reason or reasons[k]
            remote_ids[k] = out.remote_id or remote_ids[k]
    return [
        each(lambda f: "(remote)" if f is None else f, cols["file"]),
        each(sheet_cell, cols["sheet"]),
        cols["row"],
        cols["raw_phone"],
        phones,
        cols["name"],
        each(", ".join, cols["groups"]),
        actions,
        outcome,
        reasons,
        remote_ids,
        attempts,
    ]


def _summary(run: _Run) -> dict[str, Any]:
    s: dict[str, Any] = {
        "command": run.command,
        "run_id": run.run_id,
        "started_at": run.started_at,
        "mode": run.settings.mode,
    }
    if run.ingested is not None:
        ing = run.ingested
        s.update(
            rows_read=ing.rows_read,
            valid=run.valid or len(ing.contacts),
            invalid=column(ing.issues, "kind").count("invalid"),
            duplicates=column(ing.issues, "kind").count("duplicate"),
        )
    if run.plan is not None:
        c = run.plan.counts
        s.update(
            remote_contacts=run.remote_count,
            unchanged=c.get("unchanged", 0),
            drift=c.get("drift", 0),
            to_create=c.get("create", 0),
            to_delete=c.get("delete", 0),
            to_replace=c.get("replace", 0),
            groups_to_create=len(run.plan.group_creates),
            skipped_optouts=c.get("skip_optout", 0),
            kept_remote_only=c.get("keep", 0),
        )
    if run.applied is not None:
        finished: list[str] = [
            o.entry.action for o in run.applied.outcomes if o.status in ("done", "recovered")
        ]

        def n(action: str) -> int:
            return finished.count(action)

        s.update(
            created=n("create"),
            deleted=n("delete"),
            replaced=n("replace"),
            recovered=run.applied.count("recovered"),
            failed=run.applied.count("failed"),
            not_attempted=run.applied.count("not_attempted"),
            unverified=run.applied.count("unverified"),
            quota_reached=run.applied.quota_reached,
            groups_created=run.applied.groups_created,
        )
    if run.requests:
        s["requests"] = run.requests
    if run.probe_requests:
        s["permission_probes"] = run.probe_requests
    s["verified"] = run.verified.ok if run.verified else None
    if run.verified and -1 in run.verified.problems:
        s["verify_error"] = run.verified.problems[-1]
    if run.verified and run.verified.skipped:
        s["verify_skipped"] = run.verified.skipped
    if run.refused:
        s["refused"] = run.refused
    if run.stopped:
        s["stopped"] = run.stopped.reason
    s["timings"] = {**run.timings, "total": round(time.monotonic() - run.started, 3)}
    s["versions"] = {
        "contact_sync": __version__,
        "phonenumbers": phonenumbers.__version__,
        "python": platform.python_version(),
    }
    return s


_SUMMARY_LABELS = [
    ("rows_read", "rows read"),
    ("valid", "valid"),
    ("invalid", "invalid"),
    ("duplicates", "duplicates"),
    ("remote_contacts", "remote contacts"),
    ("unchanged", "unchanged"),
    ("drift", "drift (left alone)"),
    ("to_create", "to create"),
    ("to_delete", "to delete"),
    ("to_replace", "to replace"),
    ("skipped_optouts", "skipped: opted out"),
    ("created", "created"),
    ("deleted", "deleted"),
    ("replaced", "replaced"),
    ("recovered", "recovered after a lost answer"),
    ("failed", "failed"),
    ("not_attempted", "not attempted"),
    ("verified", "verified"),
    ("verify_skipped", "verification skipped"),
    ("stopped", "stopped"),
]


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, object]]:
    return [(label, summary[k]) for k, label in _SUMMARY_LABELS if summary.get(k) is not None]


def _check_report_dir(where: Path) -> None:
    """Refuse a report directory that cannot be written before any work (nothing created): an
    apply must not write contacts it then cannot account for. A full disk shows only later."""
    existing = where.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "not a directory" if not existing.is_dir() else "not writable"
        raise ConfigError(
            f"--report-dir {where}: {existing} is {why}",
            hint="choose a directory this user can write to (--report-dir DIR)",
        )


def _write_reports(run: _Run) -> tuple[Path, dict[str, Any]]:
    try:
        return _write_report_files(run)
    except OSError as exc:
        done = "the contacts were written, " if run.applied and run.applied.outcomes else ""
        raise OutputError(
            f"cannot write the report in {run.report_dir}: {exc.strerror or exc}",
            hint=f"{done}free space there or choose another --report-dir; files this run "
            "finished before the failure may be there, the others are not",
        ) from None


def _write_report_files(run: _Run) -> tuple[Path, dict[str, Any]]:
    out = private_dir(run.report_dir)
    t0 = time.monotonic()
    batches, tail = _record_batches(run)
    summary: dict[str, Any] = {}
    with open_records(out, tail=tail) as records:
        # report.xlsx's helper renders the tail while plan.json is written; the time this
        # process spent on the reports until now is counted in the report stage's
        ahead = time.monotonic() - t0
        if run.plan is not None and run.command == "plan":
            t1 = time.monotonic()
            _write_plan(run)  # the plan stage's product, timed apart from the reports
            run.timed("save_plan", t1)
        t0 = time.monotonic() - ahead
        invalid = run.ingested.invalid if run.ingested else ()

        def finish() -> tuple[dict[str, Any], list[tuple[str, object]]]:
            run.timed("report", t0)
            summary.update(_summary(run))
            return summary, summary_rows(summary)

        # rejected.csv is written once two batches are with the writers' threads: this
        # thread's work, while theirs goes on
        records.write(_then(batches, lambda: write_rejected(out / "rejected.csv", invalid)), finish)
    title = f"contact-sync {run.command}" + (" — refused" if run.refused else "")
    write_summary_md(out / "summary.md", summary_markdown(title, summary_rows(summary)))
    log.info("report.written", dir=str(out))
    return out, summary


def _then(batches: Iterable[RecordBatch], work: Callable[[], None]) -> Iterator[RecordBatch]:
    """The batches, with `work` done when the third one is asked for (or at the end)."""
    it = iter(batches)
    yield from islice(it, 2)
    work()
    yield from it


def _finish(run: _Run) -> RunResult:
    out, summary = _write_reports(run)
    ok = run.command == "plan" or (run.verified is not None and run.verified.ok)
    code = EXIT_OK if ok else EXIT_FAILED
    if run.stopped is not None and run.stopped.signal is not None:
        code = 128 + run.stopped.signal  # as a shell reports a process ended by that signal
    files = {
        name: out / name
        for name in (
            "report.json",
            "report.csv",
            "rejected.csv",
            "report.xlsx",
            "summary.md",
            "plan.json",
        )
        if (out / name).exists()
    }
    log.info("run.done", exit_code=code, verified=summary.get("verified"))
    return RunResult(run.command, run.run_id, code, summary, out, files)
