"""The command line: a thin shell over the library. Only this package prints or exits."""

from __future__ import annotations

import importlib
from typing import ClassVar

import click

from sync import __version__


class _Commands(click.Group):
    """Commands imported when they are used (click's lazy loading pattern): `emulator` pulls in
    Starlette and uvicorn, ~35 ms of every other command's start-up."""

    LAZY: ClassVar[dict[str, str]] = {"emulator": "sync.cli.emulator:emulator_command"}

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
    cli()


def _register() -> None:
    from sync.cli.run import apply_command, plan_command

    cli.add_command(plan_command)
    cli.add_command(apply_command)


_register()
from sync.cli.check import check_command  # noqa: E402 - registered last, one line per command

cli.add_command(check_command)
