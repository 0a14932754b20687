"""The command line: a thin shell over the library. Only this package prints or exits."""

from __future__ import annotations

import click

from sync import __version__
from sync.cli.emulator import emulator_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
cli.add_command(emulator_command)
from sync.cli.check import check_command  # noqa: E402 - registered last, one line per command

cli.add_command(check_command)
