"""The command line as documentation: every command and option explains itself."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from sync import __version__
from sync.cli import cli, exit_status

_CTX = click.Context(cli)
COMMANDS = cli.list_commands(_CTX)  # through click's API: some commands load when first used


def test_the_documented_commands_exist() -> None:
    assert {"plan", "apply", "check", "emulator"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_and_option_has_help(name: str) -> None:
    command = cli.get_command(_CTX, name)
    assert command is not None
    assert command.help and command.help.strip(), f"{name} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts} has no help text"
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_plan_and_apply_document_exit_codes_and_environment() -> None:
    for name in ("plan", "apply"):
        text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "WASMS_SECRET_FILE" in text and "3 a safety guard refused" in text


def test_python_dash_m_sync_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sync", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


def test_no_secret_flag_exists() -> None:
    """The secret is never a command-line argument (`ps` would show it)."""
    for name in COMMANDS:
        command = cli.get_command(_CTX, name)
        assert command is not None
        for param in command.params:
            assert not any("secret" in opt for opt in getattr(param, "opts", [])) or (
                command.name == "emulator"
            )


def test_exit_status_is_what_sys_exit_would_make_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert [exit_status(None), exit_status(0), exit_status(3), exit_status(True)] == [0, 0, 3, 1]
    assert exit_status("cannot go on") == 1
    assert capsys.readouterr().err == "cannot go on\n"
