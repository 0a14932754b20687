"""Guarantees under faults: convergence under chaos, crashes, concurrent runs, unreachable remotes.

The emulator injects proxy 429s (with Retry-After), 503s, "work done, answer lost" on writes and
latency jitter; `apply` (a second run allowed when the first exits 1) must leave the remote
exactly in the desired state, touch nothing outside the plan and account for every attempt.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

import sync
from sync.emulator import Faults
from sync.errors import RemoteError
from sync.settings import Limit, Secret, Settings
from tests.e2e import SECRET, Remote, records, remote, report

__all__ = ["remote"]

DESIRED = {f"+9230055{i:05d}": f"Customer Number {i}" for i in range(40)}


def source(r: Remote) -> Path:
    rows = "".join(f"{name},{phone}\n" for phone, name in DESIRED.items())
    return r.csv("desired.csv", "Name,Phone\n" + rows)


def seed_for_chaos(r: Remote) -> tuple[int, int]:
    customers = r.store.add_group("Customers")
    staff = r.store.add_group("Staff")
    phones = list(DESIRED)
    for phone in phones[:10]:  # unchanged
        r.store.add_contact(phone, DESIRED[phone], [customers])
    for phone in phones[10:15]:  # drift: replaced
        r.store.add_contact(phone, "Old Name Here", [customers])
    for i in range(8):  # in scope, not wanted: deleted
        r.store.add_contact(f"+9230066{i:05d}", f"Former Customer {i}", [customers])
    for i in range(5):  # out of scope: never touched
        r.store.add_contact(f"+9230077{i:05d}", f"Staff Person {i}", [staff])
    return customers, staff


def settings(r: Remote, src: Path, out: str) -> Settings:
    return Settings(
        sources=(src,),
        region="PK",
        groups=("Customers",),
        mode="mirror",
        scope_groups=("Customers",),
        replace_changed=True,
        max_delete=Limit(100, True),
        base_url=r.base_url,
        secret=Secret(SECRET),
        home=r.tmp / "home",
        report_dir=r.tmp / out,
        attempts=8,
        concurrency=8,
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_chaos_converges_and_touches_nothing_outside_the_plan(remote: Remote, seed: int) -> None:
    customers, staff = seed_for_chaos(remote)
    outside = {c["id"]: c for c in remote.store.contacts() if c["groups"] == [str(staff)]}
    remote.app.chaos.rng = random.Random(seed)  # reproducible faults per seed
    remote.app.set_faults(
        Faults(
            p429=0.10,
            p503=0.10,
            lost=0.15,
            lost_as="either",
            retry_after=1,
            latency_ms=2,
            jitter_ms=15,
        )
    )
    src = source(remote)
    runs = []
    for attempt in range(2):
        before = dict(remote.store.stats.requests)
        result = sync.apply(settings(remote, src, f"run{attempt}"))
        after = remote.store.stats.requests
        runs.append(result)
        # every write request the emulator received is accounted for in the report
        doc = report(remote.tmp / f"run{attempt}")
        writes = ("create/contact", "delete/contact")
        sent = sum(after[e] - before.get(e, 0) for e in writes)
        probes = sum(doc["summary"].get("permission_probes", {}).get(e, 0) for e in writes)
        assert sum(r["attempts"] for r in doc["records"]) == sent - probes
        if result.exit_code == 0:
            break
        assert result.exit_code == 1
    assert runs[-1].exit_code == 0 and runs[-1].summary["verified"] is True
    remote.app.set_faults(None)

    contacts = remote.store.contacts()
    phones = [c["phone"] for c in contacts]
    assert len(phones) == len(set(phones)), "no duplicate contact"
    in_scope = {c["phone"]: c for c in contacts if str(customers) in c["groups"]}
    assert {p: c["name"] for p, c in in_scope.items()} == DESIRED
    assert all(c["groups"] == [str(customers)] for c in in_scope.values())
    now_outside = {c["id"]: c for c in contacts if c["groups"] == [str(staff)]}
    assert now_outside == outside, "nothing outside the scope was touched"
    groups = [g["name"] for g in remote.store.groups()]
    assert sorted(groups) == ["Customers", "Staff"], "no duplicate group from a retried create"


@pytest.mark.parametrize(
    ("faults", "attempts", "why"),
    [
        # the first answer is lost; the retry meets "Phone number already exist": success
        (Faults(lost=1.0, times=1, scope="writes"), 2, "the retry found it stored"),
        # the first answer is lost, then a proxy refuses every retry: the client gives up, and
        # the verification listing finds the contact stored
        (
            [Faults(lost=1.0, times=1, scope="writes"), Faults(p503=1.0, scope="writes")],
            5,
            "the listing shows it stored",
        ),
    ],
)
def test_lost_answers_are_recovered_not_duplicated(
    remote: Remote, faults: Faults | list[Faults], attempts: int, why: str
) -> None:
    remote.store.add_group("Customers")
    remote.app.set_faults(faults)
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    out = remote.tmp / "r"
    res = remote.run(
        "apply", str(src), "--region", "PK", "--group", "Customers", "--report-dir", str(out)
    )
    assert res.exit_code == 0, res.stderr
    rec = records(out)["+923012345678"]
    assert (rec["outcome"], rec["attempts"]) == ("recovered", attempts)
    assert why in rec["reason"]
    probes = report(out)["summary"]["permission_probes"]["create/contact"]
    assert remote.store.stats.requests["create/contact"] == attempts + probes
    assert len(remote.store.contacts()) == 1


# -- crashes and concurrent runs -----------------------------------------------------------------


APPLY = ["apply", "--region", "PK", "--group", "Customers"]


def signal_mid_writes(remote: Remote, sig: signal.Signals, name: str) -> tuple[int, Path, str]:
    """Start an apply of `source` (slow writes, two at a time), send `sig` once six contacts
    are on the remote; its exit code, report directory and source."""
    remote.store.add_group("Customers")
    remote.app.set_faults(Faults(latency_ms=40, scope="writes"))
    src = str(source(remote))
    out = remote.tmp / name
    with remote.spawn(*APPLY, src, "--concurrency", "2", "--report-dir", str(out)) as proc:
        remote.wait_for(lambda: len(remote.store.contacts()) >= 6)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    return proc.returncode, out, src


@pytest.mark.slow
def test_sigkill_mid_apply_then_the_next_run_converges(remote: Remote) -> None:
    code, out, src = signal_mid_writes(remote, signal.SIGKILL, "crashed")
    assert code == -signal.SIGKILL
    assert 6 <= len(remote.store.contacts()) < len(DESIRED), "killed in the middle of its writes"
    leftovers = [p.name for p in out.iterdir()]
    assert not [n for n in leftovers if n.endswith(".tmp")], "no half-written file"
    assert "report.json" not in leftovers
    assert "plan.json" in leftovers  # written (atomically) before the first write

    remote.app.set_faults(None)
    res = remote.run(*APPLY, src, "--report-dir", str(remote.tmp / "next"))
    assert res.exit_code == 0, res.stderr
    assert "lock.stale_recovered" in res.stderr
    assert {c["phone"]: c["name"] for c in remote.store.contacts()} == DESIRED


@pytest.mark.slow
def test_two_runs_at_once_one_proceeds_the_other_is_told(remote: Remote) -> None:
    remote.store.add_group("Customers")
    remote.app.set_faults(Faults(latency_ms=30, scope="writes"))
    src = str(source(remote))
    first_dir = str(remote.tmp / "first")
    with remote.spawn(*APPLY, src, "--concurrency", "2", "--report-dir", first_dir) as first:
        remote.wait_for(lambda: len(remote.store.contacts()) >= 2)
        second = remote.run(*APPLY, src)
        assert second.exit_code == 3
        assert f"pid {first.pid}" in second.stderr and "another run holds the lock" in second.stderr
        assert first.wait(timeout=60) == 0
    assert {c["phone"]: c["name"] for c in remote.store.contacts()} == DESIRED


# -- an unreachable remote ------------------------------------------------------------------------


def test_unreachable_remote_exits_4_saying_what_it_tried(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    dead = "http://127.0.0.1:9/api/"  # the discard port: nothing listens there
    s = Settings(
        sources=(src,),
        region="PK",
        base_url=dead,
        secret=Secret(SECRET),
        home=remote.tmp / "home",
        attempts=2,
        report_dir=remote.tmp / "r",
    )
    with pytest.raises(RemoteError) as err:
        sync.apply(s)
    assert err.value.exit_code == 4
    text = str(err.value)
    assert "127.0.0.1:9" in text and SECRET not in text
    assert "gave up after 2 attempts" in text and "WASMS_BASE_URL" in text
    remote.outputs.append(text)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_apply_stops_the_writes_and_writes_the_report(
    remote: Remote, sig: signal.Signals
) -> None:
    """A cron or systemd timeout (SIGTERM) or Ctrl-C (SIGINT) in the middle of the writes: those
    in flight finish, no other is sent, the report says which is which, and the exit code is
    the shell's for that signal. The next run does the rest."""
    code, out, src = signal_mid_writes(remote, sig, "stopped")
    assert code == 128 + sig
    stored = {c["phone"] for c in remote.store.contacts()}
    assert 6 <= len(stored) < len(DESIRED), "stopped in the middle of its writes"
    doc = report(out)
    s = doc["summary"]
    assert s["stopped"] == f"the run was stopped ({sig.name})"
    assert s["verified"] is False and "not verified" in s["verify_skipped"]
    assert s["created"] + s["not_attempted"] == len(DESIRED) and s["failed"] == 0
    done = {r["phone"] for r in doc["records"] if r["outcome"] == "done"}
    assert done == stored, "every contact on the remote is reported done, and only those"
    skipped = [r for r in doc["records"] if r["outcome"] == "not_attempted"]
    assert skipped and all(sig.name in r["reason"] for r in skipped)
    assert (out / "summary.md").exists() and "stopped" in (out / "summary.md").read_text()

    remote.app.set_faults(None)
    res = remote.run(*APPLY, src, "--report-dir", str(remote.tmp / "next"))
    assert res.exit_code == 0, res.stderr
    assert report(remote.tmp / "next")["summary"]["created"] == len(DESIRED) - len(stored)
    assert {c["phone"]: c["name"] for c in remote.store.contacts()} == DESIRED
