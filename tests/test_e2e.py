"""The plan/apply contract end to end: the real command line over loopback against the emulator.

Each outcome, each guard, each exit code, the saved-plan path and idempotency.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sync import engine
from sync import report as report_module
from sync.apply import unclaimed_signals
from sync.models import Origin
from sync.plan import Entry
from sync.settings import Secret, Settings
from tests.e2e import SECRET, Remote, records, remote, report

__all__ = ["remote"]

SOURCE = """\
Name,Phone,Tags
Ayesha Siddiqui,0301-2345678,
Bilal Ahmed (new),0321 4567890,
Hamza Qureshi,(0300) 765 4321,
Hina Baig,0333 5556677,
Sara Javed,call me after 5,
Hamza Q.,+92 300 7654321,
"""


def seed(r: Remote) -> None:
    customers = r.store.add_group("Customers")
    staff = r.store.add_group("Staff")
    r.store.add_contact("+923012345678", "Ayesha Siddiqui", [customers])  # unchanged
    r.store.add_contact("+923214567890", "Bilal Ahmed", [customers])  # drift (name)
    r.store.add_contact("+923009999999", "Gone Away", [customers])  # mirror delete, in scope
    r.store.add_contact("+923008888888", "Staff Member", [staff])  # out of scope: kept
    for i in range(6):  # keeps the in-scope deletes under the default 10%... with --max-delete
        r.store.add_contact(f"+92300100000{i}", f"Other Customer {i}", [customers])
    r.store.add_optout("+923335556677")  # Hina opted out


def test_every_outcome_then_nothing_left_to_do(remote: Remote) -> None:
    seed(remote)
    src = remote.csv(
        "crm.csv",
        SOURCE
        + "Other Customer 0,0300 1000000,\n"
        + "".join(f"Other Customer {i},0300 100000{i},\n" for i in range(1, 6)),
    )
    common = [
        "--region",
        "PK",
        "--group",
        "Customers",
        "--mode",
        "mirror",
        "--scope-group",
        "Customers",
        "--max-delete",
        "1",
    ]
    plan_dir = remote.tmp / "plan"
    res = remote.run("plan", str(src), *common, "--report-dir", str(plan_dir))
    assert res.exit_code == 0, res.stderr
    assert remote.store.stats.writes() == 0, "plan sends no write"
    recs = records(plan_dir)
    assert {
        p: recs[p]["action"]
        for p in (
            "+923012345678",
            "+923214567890",
            "+923007654321",
            "+923335556677",
            "+923009999999",
            "+923008888888",
            "call me after 5",
        )
    } == {
        "+923012345678": "unchanged",
        "+923214567890": "drift",
        "+923007654321": "create",
        "+923335556677": "skip_optout",
        "+923009999999": "delete",
        "+923008888888": "keep",
        "call me after 5": "invalid",
    }
    dup = [r for r in report(plan_dir)["records"] if r["action"] == "duplicate"]
    assert len(dup) == 1 and "crm.csv:4" in dup[0]["reason"]
    assert (plan_dir / "plan.json").exists()

    apply_dir = remote.tmp / "apply"
    res = remote.run("apply", str(src), *common, "--report-dir", str(apply_dir))
    assert res.exit_code == 0, res.stderr
    summary = report(apply_dir)["summary"]
    assert (summary["created"], summary["deleted"], summary["verified"]) == (1, 1, True)
    assert summary["rows_read"] == 12 and summary["invalid"] == 1 and summary["duplicates"] == 1
    phones = remote.phones()
    assert "+923007654321" in phones and phones["+923007654321"]["name"] == "Hamza Qureshi"
    assert "+923009999999" not in phones, "the in-scope remote-only contact is deleted"
    assert "+923008888888" in phones, "the out-of-scope contact is kept"
    assert "+923335556677" not in phones, "the opted-out phone is never re-created"
    assert phones["+923214567890"]["name"] == "Bilal Ahmed", "drift is left alone"
    created = records(apply_dir)["+923007654321"]
    assert created["outcome"] == "done" and created["remote_id"] == phones["+923007654321"]["id"]
    assert "report:" in res.stdout

    remote.store.stats.reset()
    res = remote.run("plan", str(src), *common, "--report-dir", str(remote.tmp / "replan"))
    assert res.exit_code == 0
    one_listing = remote.store.stats.requests["get/contacts"]
    remote.store.stats.reset()
    res = remote.run("apply", str(src), *common, "--report-dir", str(remote.tmp / "again"))
    assert res.exit_code == 0
    assert remote.store.stats.writes() == 0, "a second run over unchanged input writes nothing"
    again = report(remote.tmp / "again")["summary"]
    assert (again["to_create"], again["to_delete"], again["created"]) == (0, 0, 0)
    # nothing was written, so nothing is listed again to verify it
    assert remote.store.stats.requests["get/contacts"] == one_listing
    assert again["requests"]["get/contacts"] == one_listing
    assert (again["verified"], again["verify_skipped"]) == (True, "nothing was written")
    assert "| verification skipped | nothing was written |" in (
        remote.tmp / "again" / "summary.md"
    ).read_text(encoding="utf-8")


def test_replace_changed_keeps_the_old_values_in_the_report(remote: Remote) -> None:
    seed(remote)
    src = remote.csv("crm.csv", "Name,Phone\nBilal Ahmed (new),0321 4567890\n")
    out = remote.tmp / "r"
    res = remote.run(
        "apply",
        str(src),
        "--region",
        "PK",
        "--group",
        "Customers",
        "--replace-changed",
        "--max-delete",
        "1",
        "--report-dir",
        str(out),
    )
    assert res.exit_code == 0, res.stderr
    assert remote.phones()["+923214567890"]["name"] == "Bilal Ahmed (new)"
    rec = records(out)["+923214567890"]
    assert (rec["action"], rec["outcome"]) == ("replace", "done")
    assert "'Bilal Ahmed' → 'Bilal Ahmed (new)'" in rec["reason"]


def test_html_names_round_trip_without_false_drift(remote: Remote) -> None:
    src = remote.csv("c.csv", 'Name,Phone\n"Tom & Jerry <Ltd> \'s",0301 2345678\n')
    assert remote.run("apply", str(src), "--region", "PK").exit_code == 0
    assert remote.phones()["+923012345678"]["name"].startswith("Tom &amp; Jerry &lt;Ltd&gt;")
    remote.store.stats.reset()
    res = remote.run("apply", str(src), "--region", "PK", "--report-dir", str(remote.tmp / "b"))
    assert res.exit_code == 0 and remote.store.stats.writes() == 0
    assert report(remote.tmp / "b")["summary"]["unchanged"] == 1


# -- guards (exit 3, nothing sent) -------------------------------------------------------------


def test_max_delete_refuses_the_whole_run(remote: Remote) -> None:
    seed(remote)
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    out = remote.tmp / "r"
    res = remote.run(
        "apply",
        str(src),
        "--region",
        "PK",
        "--group",
        "Customers",
        "--mode",
        "mirror",
        "--report-dir",
        str(out),
    )
    assert res.exit_code == 3
    assert "above --max-delete 10%" in res.stderr and "hint:" in res.stderr
    assert remote.store.stats.writes() == 0
    assert len(remote.store.contacts()) == 10
    assert "refused" in report(out)["summary"], "the refused plan is still reported"


def test_mirror_with_no_valid_rows_refuses(remote: Remote) -> None:
    seed(remote)
    src = remote.csv("c.csv", "Name,Phone\nNobody,not a phone\nNo One,12\n")
    res = remote.run(
        "apply",
        str(src),
        "--region",
        "PK",
        "--mode",
        "mirror",
        "--max-invalid",
        "100%",
        "--max-delete",
        "100%",
    )
    assert res.exit_code == 3 and "no valid rows" in res.stderr
    assert remote.store.stats.writes() == 0


def test_max_invalid_refuses(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha,0301-2345678\nNobody,nope\nNo One,12\n")
    res = remote.run("apply", str(src), "--region", "PK")
    assert res.exit_code == 3 and "2 of 3 rows are invalid" in res.stderr
    assert remote.store.stats.writes() == 0


def test_a_held_lock_refuses_a_second_run(remote: Remote) -> None:
    from sync.lock import account_lock, lock_path

    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    path = lock_path(remote.tmp / "home", remote.base_url, SECRET)
    with account_lock(path, run_id="other"):
        res = remote.run("apply", str(src), "--region", "PK")
    assert res.exit_code == 3 and "another run holds the lock" in res.stderr
    assert remote.store.stats.writes() == 0


# -- saved plans ---------------------------------------------------------------------------------


def test_saved_plan_is_executed_exactly_and_refused_when_stale(remote: Remote) -> None:
    seed(remote)
    src = remote.csv("c.csv", "Name,Phone\nNew Person,0345 6789012\n")
    out = remote.tmp / "p"
    assert remote.run("plan", str(src), "--region", "PK", "--report-dir", str(out)).exit_code == 0
    plan_file = out / "plan.json"
    assert SECRET not in plan_file.read_text(encoding="utf-8")
    stale = remote.tmp / "stale.json"
    stale.write_bytes(plan_file.read_bytes())
    res = remote.run("apply", "--plan", str(plan_file), "--report-dir", str(remote.tmp / "a"))
    assert res.exit_code == 0, res.stderr
    assert "+923456789012" in remote.phones()
    # the remote has changed since `stale` was planned (the create above): refuse
    res = remote.run("apply", "--plan", str(stale))
    assert res.exit_code == 3 and "changed since this plan was made" in res.stderr


def _damaged(doc: dict[str, Any], how: str) -> dict[str, Any]:
    plan = doc["plan"]
    cols = plan["columns"]
    if how == "short column":
        cols["phone"] = cols["phone"][:-1]
    elif how == "file index":
        cols["file"] = [7 for _ in cols["file"]]
    elif how == "groups not arrays":
        cols["groups"] = [5 for _ in cols["groups"]]
    elif how == "no columns":
        del plan["columns"]
    elif how == "column not an array":
        cols["action"] = 5
    return doc


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "short column",
        "file index",
        "groups not arrays",
        "no columns",
        "column not an array",
    ],
)
def test_a_damaged_saved_plan_is_refused_before_any_write(remote: Remote, how: str) -> None:
    src = remote.csv("c.csv", "Name,Phone\nNew Person,0345 6789012\nOther,0345 6789013\n")
    out = remote.tmp / "p"
    assert remote.run("plan", str(src), "--region", "PK", "--report-dir", str(out)).exit_code == 0
    plan_file = out / "plan.json"
    if how == "truncated":
        plan_file.write_bytes(plan_file.read_bytes()[:-40])
    else:
        doc = json.loads(plan_file.read_text(encoding="utf-8"))
        plan_file.write_text(json.dumps(_damaged(doc, how)), encoding="utf-8")
    remote.store.stats.reset()
    res = remote.run("apply", "--plan", str(plan_file), "--report-dir", str(remote.tmp / "a"))
    assert res.exit_code == 2, res.stderr
    assert "is not a contact-sync plan file" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert remote.store.stats.writes() == 0


def test_saved_plan_for_another_account_is_refused(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nNew Person,0345 6789012\n")
    out = remote.tmp / "p"
    assert remote.run("plan", str(src), "--region", "PK", "--report-dir", str(out)).exit_code == 0
    other = remote.store.add_key("another-key-123456")
    res = remote.run("apply", "--plan", str(out / "plan.json"), env=remote.env(WASMS_SECRET=other))
    assert res.exit_code == 2 and "another account" in res.stderr


# -- exit codes 2 and 4 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "missing.csv"], "missing.csv"),
        (["plan", "{src}", "--max-delete", "lots"], "--max-delete: 'lots'"),
        (["plan", "{src}", "--region", "XX"], "XX"),
        (["plan"], "no SOURCE"),
        (["apply", "{src}", "--plan", "p.json"], "either SOURCE files or --plan"),
        (["plan", "{src}", "--mode", "add", "--scope-group", "Customers"], "--scope-group"),
    ],
)
def test_usage_and_input_errors_exit_2(remote: Remote, args: list[str], message: str) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run(*[a.replace("{src}", str(src)) for a in args])
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert remote.store.stats.writes() == 0


def test_missing_secret_exits_2(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run("plan", str(src), env=remote.env(WASMS_SECRET=None))
    assert res.exit_code == 2 and "WASMS_SECRET" in res.stderr


def test_secret_file_is_read(remote: Remote) -> None:
    secret_file = remote.tmp / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    env = remote.env(WASMS_SECRET=None, WASMS_SECRET_FILE=str(secret_file))
    res = remote.run("apply", str(src), "--region", "PK", env=env)
    assert res.exit_code == 0, res.stderr


def test_plain_http_is_refused_except_to_loopback(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run(
        "plan",
        str(src),
        "--region",
        "PK",
        env=remote.env(WASMS_BASE_URL="http://sys.wasms.net/api/"),
    )
    assert res.exit_code == 2 and "http://" in res.stderr


def test_report_and_plan_files_are_owner_only(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\nBad Row,nope\n")
    out = remote.tmp / "r"
    res = remote.run("apply", str(src), "--region", "PK", "--report-dir", str(out))
    assert res.exit_code == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "plan.json",
        "rejected.csv",
        "report.csv",
        "report.json",
        "report.xlsx",
        "summary.md",
    ]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}


def test_reports_are_the_same_whether_the_issue_rows_go_ahead_or_not(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.xlsx takes the invalid and duplicate rows before the entries when there are few
    enough (`_AHEAD`); past that they stream in order. Both give the same reports."""
    seed(remote)
    rows = "".join(f"Bad Row {i},nope {i},\n" for i in range(7))
    src = remote.csv("crm.csv", SOURCE + rows + "Hamza Again,0300-7654321,\n")
    monkeypatch.setattr(engine, "BATCH", 3)  # several batches of each kind
    monkeypatch.setattr(report_module, "BATCH", 3)
    outs = {}
    for label, ahead in (("ahead", 1000), ("in order", 0)):
        monkeypatch.setattr(engine, "_AHEAD", ahead)
        outs[label] = remote.tmp / label
        out = ["--report-dir", str(outs[label]), "--max-invalid", "100%"]
        res = remote.run("plan", str(src), "--region", "PK", *out)
        assert res.exit_code == 0, res.stderr
    ahead, in_order = outs["ahead"], outs["in order"]
    assert (ahead / "report.csv").read_bytes() == (in_order / "report.csv").read_bytes()
    assert report(ahead)["records"] == report(in_order)["records"]
    a, b = zipfile.ZipFile(ahead / "report.xlsx"), zipfile.ZipFile(in_order / "report.xlsx")
    with a, b:
        # the attention sheets (sheet1, the summary, holds the timings)
        sheets = [f"xl/worksheets/sheet{i}.xml" for i in range(2, 8)]
        assert [a.read(n) for n in sheets] == [b.read(n) for n in sheets]
        invalid = a.read("xl/worksheets/sheet3.xml").decode()
        assert invalid.count("<row ") == 1 + 8  # header, "call me after 5" and 7 bad rows


def test_wrong_secret_exits_4_before_any_write(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run("apply", str(src), "--region", "PK", env=remote.env(WASMS_SECRET="wrong1"))
    assert res.exit_code == 4 and "secret" in res.stderr.lower()
    assert remote.store.stats.writes() == 0


def test_missing_permissions_are_named_before_any_write(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    reads = ["get_contacts", "get_groups", "get_unsubscribed"]
    key = remote.store.add_key("read-only-key-1", reads)
    res = remote.run("plan", str(src), "--region", "PK", env=remote.env(WASMS_SECRET=key))
    assert res.exit_code == 0, "planning needs only the read permissions"
    # a write permission missing: found by a probe that cannot write, before the first write
    res = remote.run(
        "apply",
        str(src),
        "--region",
        "PK",
        "--group",
        "Customers",
        env=remote.env(WASMS_SECRET=key),
    )
    assert res.exit_code == 4
    assert "`create_contact`" in res.stderr and "`create_group`" in res.stderr
    assert not remote.store.contacts() and not remote.store.groups()
    # two read permissions missing: one message names both, whichever listing failed first
    key = remote.store.add_key("no-list-key-1", ["create_contact", "get_groups"])
    res = remote.run("apply", str(src), "--region", "PK", env=remote.env(WASMS_SECRET=key))
    assert res.exit_code == 4
    assert "`get_contacts`" in res.stderr and "`get_unsubscribed`" in res.stderr
    assert not remote.store.contacts()


def test_quota_stops_creates_and_exits_1(remote: Remote) -> None:
    remote.store.account.quota = 2
    rows = "".join(f"Person Number {i},0300 20000{i:02d}\n" for i in range(6))
    src = remote.csv("c.csv", "Name,Phone\n" + rows)
    out = remote.tmp / "r"
    res = remote.run(
        "apply", str(src), "--region", "PK", "--concurrency", "1", "--report-dir", str(out)
    )
    assert res.exit_code == 1
    summary = report(out)["summary"]
    assert summary["quota_reached"] is True and summary["created"] == 2
    assert summary["failed"] + summary["not_attempted"] == 4
    assert summary["verified"] is False
    assert len(remote.store.contacts()) == 2
    reasons = {r["outcome"]: r["reason"] for r in report(out)["records"]}
    assert "quota" in reasons["not_attempted"]


def test_json_logs_carry_a_run_id_and_no_secret(remote: Remote) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run("apply", str(src), "--region", "PK", "--log-format", "json", "-v")
    lines = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert lines and len({line["run_id"] for line in lines}) == 1
    assert SECRET not in res.stderr + res.stdout


def test_the_console_script_exits_with_the_runs_code_and_all_its_output(remote: Remote) -> None:
    """`python -m sync` (the console script) ends by `os._exit` once it has flushed: the run's
    exit code stands and nothing it printed or logged is lost on the way out."""
    good = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    bad = remote.csv("bad.csv", "Name,Phone\nAyesha,0301-2345678\nNobody,nope\nNo One,12\n")
    out = remote.tmp / "out"
    args = ["--region", "PK", "--log-format", "json"]
    with remote.spawn("apply", str(good), *args, "--report-dir", str(out)) as done:
        stdout, stderr = done.communicate(timeout=60)
    assert done.returncode == 0, stderr
    assert "rows read" in stdout and stdout.rstrip().endswith(f"report: {out}")
    events = [json.loads(line)["event"] for line in stderr.splitlines()]
    assert events[-1] == "run.done" and report(out)["summary"]["created"] == 1
    writes = remote.store.stats.writes()
    with remote.spawn("apply", str(bad), *args) as refused:
        stdout, stderr = refused.communicate(timeout=60)
    assert refused.returncode == 3 and "2 of 3 rows are invalid" in stderr
    assert remote.store.stats.writes() == writes, "the refused run sent no write"


def library_settings(remote: Remote, src: Path) -> Settings:
    """Settings for a library call (`sync.apply`), as an orchestrator would make them."""
    return Settings(
        sources=(src,),
        region="PK",
        base_url=remote.base_url,
        secret=Secret(SECRET),
        home=remote.tmp / "home",
        report_dir=remote.tmp / "lib",
    )


def test_library_api_returns_a_result(remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    import sync

    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    settings = library_settings(remote, src)
    result = sync.apply(settings)
    assert result.exit_code == 0 and result.summary["created"] == 1
    assert Path(result.files["report.json"]).exists()
    assert json.loads(json.dumps(result.asdict()))["summary"]["verified"] is True


@pytest.mark.parametrize("closed", ["stdout", "stderr", "both"])
def test_a_reader_that_goes_away_changes_nothing(remote: Remote, closed: str) -> None:
    """`contact-sync apply ... | head`, or logs piped to a collector that died: the sync goes on
    to the end, writes every contact and every report, and exits with its own code."""
    src = remote.csv(
        "in.csv",
        "Name,Phone\n" + "".join(f"Person {i:03d},0300{1000000 + i}\n" for i in range(40)),
    )
    merged = {**os.environ, **remote.env()}
    gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)  # a reader that is already gone
    gone.wait()
    assert gone.stdin is not None
    streams = {
        "stdout": gone.stdin if closed in ("stdout", "both") else subprocess.DEVNULL,
        "stderr": gone.stdin if closed in ("stderr", "both") else subprocess.DEVNULL,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sync",
            "apply",
            str(src),
            "--region",
            "PK",
            "-v",
            "--log-format",
            "json",
            "--report-dir",
            str(remote.tmp / "out"),
        ],
        env={k: v for k, v in merged.items() if v is not None},
        timeout=120,
        check=False,
        **streams,
    )
    gone.stdin.close()
    assert done.returncode == 0
    assert len(remote.phones()) == 40
    summary = report(remote.tmp / "out")["summary"]
    assert summary["created"] == 40 and summary["verified"] is True
    assert (remote.tmp / "out" / "summary.md").exists()


def test_an_error_keeps_its_exit_code_when_stderr_has_gone(remote: Remote) -> None:
    """The error message cannot be read, but cron and CI still get the documented code."""
    src = remote.csv("in.csv", "Name,Phone\nAli Khan,03001234567\n")
    gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    gone.wait()
    env = {k: v for k, v in {**os.environ, **remote.env(WASMS_SECRET=None)}.items() if v}
    done = subprocess.run(
        [sys.executable, "-m", "sync", "plan", str(src), "--region", "PK"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=gone.stdin,
        timeout=60,
        check=False,
    )
    assert gone.stdin is not None
    gone.stdin.close()
    assert done.returncode == 2  # no secret: a configuration error


def test_an_unwritable_report_dir_is_refused_before_any_write(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    (remote.tmp / "a-file").write_text("x")
    res = remote.run("apply", str(src), "--region", "PK", "--report-dir", "a-file/out")
    assert res.exit_code == 2, res.stderr
    assert f"{remote.tmp / 'a-file'} is not a directory" in res.stderr
    # not writable (chmod cannot show it to root, so the check is told so)
    real = os.access
    monkeypatch.setattr(
        engine.os, "access", lambda path, mode: Path(path) != remote.tmp and real(path, mode)
    )
    res = remote.run("apply", str(src), "--region", "PK", "--report-dir", "ro/out")
    assert res.exit_code == 2, res.stderr
    assert "is not writable" in res.stderr and "--report-dir DIR" in res.stderr
    assert remote.store.stats.writes() == 0
    assert not (remote.tmp / "ro").exists()  # nothing created on the way


def test_a_full_disk_is_an_error_that_says_so(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "open_records", full)
    res = remote.run("apply", str(src), "--region", "PK", "--report-dir", "out")
    assert res.exit_code == 1, res.stderr
    assert "cannot write the report in out: No space left on device" in res.stderr
    assert "the contacts were written" in res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert "+923012345678" in remote.phones()
    res = remote.run("plan", str(src), "--region", "PK", "--report-dir", "out2")
    assert res.exit_code == 1 and "cannot write the report in out2" in res.stderr
    assert "contacts were written" not in res.stderr


def test_a_plan_json_that_cannot_be_written_leaves_no_report(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report files are opened before plan.json is written (report.xlsx starts early): when
    plan.json fails, none of them is left half-made."""
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\nNobody,nope\n")

    def full(run: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "_write_plan", full)
    res = remote.run("plan", str(src), "--region", "PK", "--report-dir", "out")
    assert res.exit_code == 1 and "cannot write the report in out" in res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in Path("out").iterdir()) == []


def test_the_library_leaves_signal_handlers_as_it_found_them(remote: Remote) -> None:
    """A program that handles SIGTERM itself keeps its handler through an apply (the graceful
    stop is only taken where nobody else claimed the signal), and default ones stay default."""
    import signal
    import threading

    import sync

    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")

    def host_handler(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    settings = library_settings(remote, src)
    previous = signal.signal(signal.SIGTERM, host_handler)
    try:
        assert unclaimed_signals() == (signal.SIGINT,)
        assert sync.apply(settings).exit_code == 0
        assert signal.getsignal(signal.SIGTERM) is host_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    seen: list[tuple[signal.Signals, ...]] = []
    thread = threading.Thread(target=lambda: seen.append(unclaimed_signals()))
    thread.start()
    thread.join()
    assert seen == [()]  # no handler can be set outside the main thread


def test_the_sources_are_read_while_the_remote_is_listed(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read waits, on its thread, until the emulator has answered a listing: were the two
    one after the other, it would wait for nothing (the guard below is a deadlock stop, not a
    timing)."""
    real = engine.ingest_cached
    seen: list[str] = []

    def reading(*args: Any) -> Any:
        seen.append(threading.current_thread().name)
        remote.wait_for(lambda: remote.store.stats.requests["get/contacts"] > 0, timeout=60)
        return real(*args)

    monkeypatch.setattr(engine, "ingest_cached", reading)
    src = remote.csv("c.csv", "Name,Phone\nAyesha Siddiqui,0301-2345678\n")
    res = remote.run("apply", str(src), "--region", "PK")
    assert res.exit_code == 0, res.stderr
    assert seen == ["contact-sync-read"]
    assert remote.phones().keys() == {"+923012345678"}


def test_an_input_error_wins_over_a_listing_error(remote: Remote) -> None:
    """Read and listing overlap, but the outcome is as when one ran after the other: the
    source's problem is reported (exit 2), not the wrong secret (exit 4)."""
    src = remote.csv("c.csv", "Name,Email\nAyesha Siddiqui,a@example.com\n")
    res = remote.run("apply", str(src), "--region", "PK", env=remote.env(WASMS_SECRET="wrong1"))
    assert res.exit_code == 2, res.stderr
    assert "no phone column" in res.stderr
    assert remote.store.stats.writes() == 0


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_rejected_csv_is_written_once_two_batches_are_handed_over(count: int) -> None:
    """`_then`: rejected.csv's work runs when the third batch is asked for (the first two are
    then with the writers' threads), or at the end when there are fewer: always exactly once."""
    seen: list[object] = []
    batches = [f"batch {i}" for i in range(count)]
    for batch in engine._then(batches, lambda: seen.append("rejected")):  # type: ignore[arg-type]
        seen.append(batch)
    assert seen == [*batches[:2], "rejected", *batches[2:]]


def test_report_outcomes_of_a_saved_plans_actions_even_unknown_ones() -> None:
    """The outcome of each entry comes from its action (a C-level lookup); an action this
    version does not know (a hand-edited plan.json) is reported as not attempted, not a crash."""
    origin = Origin("a.csv", None, 2)
    entries = [
        Entry("create", "+923001112233", "A", ("g",), origin=origin, raw_phone="0300"),
        Entry("keep", "+923001112234", "B", ("1",), "remote only", remote_id=7),
        Entry("bogus", "+923001112235", "C", ("g",), origin=origin),  # type: ignore[arg-type]
    ]
    for command, unapplied in (("plan", "planned"), ("apply", "not_attempted")):
        run = SimpleNamespace(applied=None, command=command, plan=SimpleNamespace(entries=entries))
        (batch,) = engine._entry_batches(run)  # type: ignore[arg-type]
        outcomes = batch.columns[report_module.COLUMNS.index("outcome")]
        assert list(outcomes) == [unapplied, "kept", unapplied]
