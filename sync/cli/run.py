"""`contact-sync plan` and `contact-sync apply`: options → Settings → the library → a summary.

This contract is relied on by scripts and cron jobs: keep option names and exit codes stable.
Exit codes: 0 done and verified; 1 finished with failures, a verification mismatch or a report
that could not be written; 2 usage, configuration or input error (nothing sent); 3 a safety
guard refused (nothing sent); 4 the remote refused access or could not be reached before any
write; 130/143 SIGINT/SIGTERM during the writes (the rest not sent, the report written).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from sync import engine, logs
from sync.cli.common import handle_errors
from sync.errors import ConfigError
from sync.settings import Limit, Settings, home_dir, read_base_url, read_secret

EPILOG = """\b
Environment:
  WASMS_SECRET or WASMS_SECRET_FILE   the API secret (never a flag: `ps` would show it)
  WASMS_BASE_URL                      default https://sys.wasms.net/api/
\b
Exit codes:
  0 done and verified      1 finished, but something failed or did not verify
  2 usage/config/input     3 a safety guard refused     4 the remote refused or is unreachable
  130/143 stopped by SIGINT/SIGTERM during the writes (the report says what was done)
"""


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.argument("sources", nargs=-1, type=click.Path(path_type=Path)),
        click.option(
            "--mapping",
            metavar="PATH|NAME",
            help="Column mapping: a TOML file or a preset (default, google-contacts, outlook).",
        ),
        click.option("--region", metavar="CC", help="Default region for national numbers (PK)."),
        click.option(
            "--group",
            "groups",
            multiple=True,
            metavar="NAME_OR_ID",
            help="Put every contact in this group (repeatable).",
        ),
        click.option(
            "--mode",
            type=click.Choice(["add", "mirror"]),
            default="add",
            show_default=True,
            help="add: only create; mirror: also delete remote contacts not in the "
            "sources (within --scope-group).",
        ),
        click.option(
            "--scope-group",
            "scope_groups",
            multiple=True,
            metavar="NAME_OR_ID",
            help="Mirror only deletes contacts in these groups (default: whole account).",
        ),
        click.option(
            "--max-delete",
            default="10%",
            show_default=True,
            metavar="N|P%",
            help="Refuse the whole run if deletions exceed this (of contacts in scope).",
        ),
        click.option(
            "--max-invalid",
            default="50%",
            show_default=True,
            metavar="P%",
            help="Refuse the run if invalid rows exceed this share of source rows.",
        ),
        click.option(
            "--replace-changed",
            is_flag=True,
            help="Replace (delete + create) contacts whose name or groups changed.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 256),
            default=16,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            metavar="R",
            help="At most R requests per second.",
        ),
        click.option(
            "--report-dir",
            type=click.Path(path_type=Path),
            help="Where to write the report (default reports/<UTC timestamp>/).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["console", "json"]),
            help="Logs on stderr: console on a terminal, JSON lines otherwise.",
        ),
        click.option("-v", "--verbose", count=True, help="More log detail (-vv: debug)."),
        click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _settings(kw: dict[str, Any], *, plan_path: Path | None = None) -> Settings:
    sources = tuple(kw["sources"])
    if plan_path is None and not sources:
        raise ConfigError("no SOURCE given", hint="name one or more CSV/XLSX/XLS/ODS files")
    if plan_path is not None and sources:
        raise ConfigError(
            "give either SOURCE files or --plan, not both",
            hint="--plan executes a saved plan exactly; it reads no sources",
        )
    return Settings(
        sources=sources,
        mapping=kw["mapping"],
        region=kw["region"],
        groups=tuple(kw["groups"]),
        mode=kw["mode"],
        scope_groups=tuple(kw["scope_groups"]),
        max_delete=Limit.parse(kw["max_delete"], option="--max-delete"),
        max_invalid=Limit.parse(kw["max_invalid"], option="--max-invalid"),
        replace_changed=kw["replace_changed"],
        concurrency=kw["concurrency"],
        rate=kw["rate"],
        report_dir=kw["report_dir"],
        plan_path=plan_path,
        base_url=read_base_url(),
        secret=read_secret(),
        home=home_dir(),
    )


def _configure_logs(kw: dict[str, Any]) -> None:
    logs.configure(kw["log_format"] or "auto", -1 if kw["quiet"] else kw["verbose"])


class _Stdout(Console):
    """Rich's console, except when stdout's reader has gone (`contact-sync apply ... | head`):
    rich would exit 1, but the run is over and its reports are written, so its own exit code
    stands. What is left to print goes nowhere, and stdout points at /dev/null so that
    Python's flush at exit does not fail either."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _show(result: engine.RunResult, quiet: bool) -> None:
    console = _Stdout(highlight=False)
    if not quiet:
        table = Table(title=f"contact-sync {result.command}", show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        for label, value in engine.summary_rows(result.summary):
            table.add_row(label, str(value))
        console.print(table)
    console.print(f"report: {result.report_dir}")
    if result.command == "apply" and result.exit_code:
        console.print("[red]some operations failed or did not verify: see the report[/red]")


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("writing", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@click.command("plan", epilog=EPILOG)
@_options
@handle_errors()
def plan_command(**kw: Any) -> None:
    """Read SOURCES, list the remote, and show what apply would do. Sends no write.

    Writes report.json/.csv/.xlsx, rejected.csv, summary.md and plan.json to the report dir.
    """
    _configure_logs(kw)
    result = engine.plan(_settings(kw))
    _show(result, kw["quiet"])
    sys.exit(result.exit_code)


@click.command("apply", epilog=EPILOG)
@_options
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Execute this saved plan.json exactly (refused if the remote changed since).",
)
@handle_errors()
def apply_command(plan_path: Path | None, **kw: Any) -> None:
    """Plan, then create/delete, verify with a fresh listing and write the reconciliation."""
    _configure_logs(kw)
    settings = _settings(kw, plan_path=plan_path)
    with _progress(sys.stderr.isatty() and not kw["quiet"]) as progress:
        result = engine.apply(settings, progress=progress)
    _show(result, kw["quiet"])
    sys.exit(result.exit_code)
