"""The command line: a thin shell over the library. Only this package prints or exits."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import ClassVar

import click

from sync import __version__


class _Commands(click.Group):
    """Commands imported when they are used (click's lazy loading pattern): `emulator` pulls in
    Starlette and uvicorn, ~35 ms of every other command's start-up; `check`, the readers and
    normalisers, ~20 ms of a nightly re-run's (whose snapshot needs none of them)."""

    LAZY: ClassVar[dict[str, str]] = {
        "check": "sync.cli.check:check_command",
        "emulator": "sync.cli.emulator:emulator_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, name = self.LAZY[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="contact-sync")
def cli() -> None:
    """Keep a WaSMS.Net contact list in step with CSV and Excel spreadsheets."""


def main() -> None:
    """The `contact-sync` console script. Its process ends as soon as the command has flushed
    its output, by `os._exit`: the run's rows are left to the OS (`leave_memory_to_exit`), and
    nothing is left that an exit handler would still have to do (files, locks and threads are
    all closed by the code that opened them)."""
    from sync import engine  # already imported by the commands: costs nothing here

    engine.leave_memory_to_exit()
    try:
        cli()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    os._exit(exit_status(code))


def exit_status(code: object) -> int:
    """What `sys.exit(code)` would make the process's status (None: 0; a message: printed on
    stderr, 1), once stdout and stderr are flushed. A reader that has gone does not change it."""
    if code is None:
        code = 0
    if not isinstance(code, int):
        with contextlib.suppress(OSError, ValueError):
            print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def _register() -> None:
    from sync.cli.run import apply_command, plan_command

    cli.add_command(plan_command)
    cli.add_command(apply_command)


_register()
