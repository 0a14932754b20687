"""`make demo`: the emulator seeded so that one run shows every outcome, then plan, apply, apply.

Runs the real command line (`python -m sync`) against the emulator over loopback, exactly as a
user or a cron job would, with the reports in demo-output/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from sync.emulator import Store, create_app, run_in_thread

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("demo-output")
SOURCES = [
    "sample_data/crm_export.csv",
    "sample_data/europe_contacts.csv",
    "sample_data/contacts.xlsx",
]
OPTIONS = [
    "--region",
    "PK",
    "--group",
    "Customers",
    "--mode",
    "mirror",
    "--scope-group",
    "Customers",
    "--max-delete",
    "3",
    "--log-format",
    "console",
]
console = Console(highlight=False)


def seed(store: Store) -> None:
    """A remote that makes one run show every outcome."""
    customers = store.add_group("Customers")
    europe = store.add_group("Europe")
    staff = store.add_group("Staff")
    store.add_contact("+4915123456789", "Zoë Müller", [europe, customers])  # unchanged
    store.add_contact("+33612345678", "Francois Lefevre", [europe, customers])  # drift (name)
    store.add_contact("+923009990001", "Old Customer One", [customers])  # mirror: delete
    store.add_contact("+923009990002", "Old Customer Two", [customers])  # mirror: delete
    store.add_contact("+923008880001", "Staff Member", [staff])  # outside the scope: kept
    store.add_optout("+923335556677")  # Hina Baig said stop: never re-created


def show_remote(store: Store, title: str) -> None:
    groups = {str(g["id"]): g["name"] for g in store.groups()}
    table = Table(title=title)
    for col in ("id", "phone", "name", "groups"):
        table.add_column(col)
    for c in sorted(store.contacts(), key=lambda c: c["id"]):
        names = ", ".join(groups.get(g, f"#{g}") for g in c["groups"])
        table.add_row(str(c["id"]), c["phone"], c["name"], names)
    console.print(table)


def run(step: str, *args: str, env: dict[str, str]) -> int:
    console.print(Rule(f"[bold]{step}[/bold]"))
    console.print("$ contact-sync " + " ".join(args), style="cyan")
    code = subprocess.call([sys.executable, "-m", "sync", *args], env=env, cwd=ROOT)  # noqa: S603 (our own fixed arguments)
    console.print(f"exit code {code}\n")
    return code


def main() -> int:
    os.chdir(ROOT)
    shutil.rmtree(OUT, ignore_errors=True)
    secret = "demo-" + secrets.token_hex(12)
    store = Store(country="PK", secret=secret)
    seed(store)
    with run_in_thread(create_app(store)) as base_url:
        env = {
            **os.environ,
            "WASMS_SECRET": secret,
            "WASMS_BASE_URL": base_url,
            "CONTACT_SYNC_HOME": str(OUT / ".home"),
        }
        console.print(f"WaSMS emulator on {base_url}")
        show_remote(store, "the remote before")
        codes = [
            run(
                "1. plan: what would change (no write)",
                "plan",
                *SOURCES,
                *OPTIONS,
                "--report-dir",
                str(OUT / "1-plan"),
                env=env,
            ),
            run(
                "2. apply: create, delete in scope, verify",
                "apply",
                *SOURCES,
                *OPTIONS,
                "--report-dir",
                str(OUT / "2-apply"),
                env=env,
            ),
        ]
        show_remote(store, "the remote after")
        store.stats.reset()
        codes.append(
            run(
                "3. apply again: nothing left to do",
                "apply",
                *SOURCES,
                *OPTIONS,
                "--report-dir",
                str(OUT / "3-apply-again"),
                env=env,
            )
        )
        writes = store.stats.writes()
    console.print(f"writes sent by the second apply: {writes}")
    console.print((OUT / "2-apply" / "summary.md").read_text(encoding="utf-8"))
    console.print(
        f"reports: {OUT}/*/ — report.json, report.csv, report.xlsx, rejected.csv, "
        "summary.md, plan.json"
    )
    ok = codes == [0, 0, 0] and writes == 0
    console.print("[green]demo finished[/green]" if ok else "[red]demo failed[/red]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
