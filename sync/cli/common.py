"""What every command shares: turning library errors into a message and an exit code."""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from sync.errors import EXIT_FAILED, SyncError
from sync.logs import redact

P = ParamSpec("P")
R = TypeVar("R")


def fail(exc: SyncError) -> None:
    """Print a library error as `error: message` (+ hint) on stderr and exit with its code,
    which stands even when nobody reads stderr any more."""
    with contextlib.suppress(OSError):
        click.secho(f"error: {redact(exc.message)}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  hint: {redact(exc.hint)}", err=True)
        if exc.report_dir:
            click.echo(f"  report: {exc.report_dir}", err=True)
    sys.exit(exc.exit_code)


def handle_errors(verbose_flag: str = "verbose") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a command: SyncError → message and its exit code; anything else → a one-line
    internal error (exit 1; the redacted traceback only with -vv). Never a raw traceback."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except SyncError as exc:
                fail(exc)
            except KeyboardInterrupt:
                with contextlib.suppress(OSError):
                    click.echo("interrupted", err=True)
                sys.exit(130)
            except (click.exceptions.Exit, click.ClickException, SystemExit):
                raise
            except Exception as exc:
                verbosity = kwargs.get(verbose_flag, 0)
                with contextlib.suppress(OSError):
                    if isinstance(verbosity, int) and verbosity >= 2:
                        click.echo(redact(traceback.format_exc()), err=True)
                    click.secho(
                        f"internal error: {type(exc).__name__}: {redact(str(exc))}",
                        fg="red",
                        err=True,
                    )
                    click.echo(
                        "  hint: this is a bug in contact-sync; run again with -vv for the "
                        "traceback and report it",
                        err=True,
                    )
                sys.exit(EXIT_FAILED)
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate
