"""`contact-sync check SOURCE...`: what ingest would make of the files, before any migration."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sync.errors import InputError
from sync.mapping import load_mapping
from sync.models import IngestResult
from sync.normalize import ingest

PREVIEW = 10
PREVIEW_ISSUES = 20


def _sources(console: Console, result: IngestResult) -> None:
    for src in result.sources:
        where = f"{src.path} [{src.sheet}]" if src.sheet else src.path
        how = ", ".join(
            x
            for x in (
                src.kind,
                f"encoding {src.encoding}" if src.encoding else "",
                f"delimiter {src.delimiter!r}" if src.delimiter else "",
                f"{src.rows} rows",
                f"skipped: {src.skipped}" if src.skipped else "",
            )
            if x
        )
        console.print(f"[bold]{where}[/bold]: {how}")
        table = Table()
        table.add_column("column")
        table.add_column("maps to")
        for column, role in src.roles:
            table.add_row(column, role if role != "-" else "[dim]unused[/dim]")
        console.print(table)


def _counts(console: Console, result: IngestResult) -> None:
    invalid, dups = len(result.invalid), len(result.duplicates)
    table = Table(title="Counts", title_justify="left")
    for col in ("rows read", "contacts", "invalid rows", "duplicate rows"):
        table.add_column(col, justify="right")
    table.add_row(str(result.rows_read), str(len(result.contacts)), str(invalid), str(dups))
    console.print(table)


def _preview(console: Console, result: IngestResult) -> None:
    table = Table(title=f"Contacts (first {PREVIEW})", title_justify="left")
    for col in ("row", "phone", "type", "name", "groups", "from", "notes"):
        table.add_column(col)
    for c in result.contacts[:PREVIEW]:
        table.add_row(
            str(c.origin),
            c.phone,
            c.number_type,
            c.name,
            ", ".join(c.groups),
            c.raw_phone,
            "; ".join(c.notes),
        )
    console.print(table)
    shown = [*result.invalid, *result.duplicates][:PREVIEW_ISSUES]
    rejected = Table(
        title=f"Rejected, then duplicate rows (first {PREVIEW_ISSUES})", title_justify="left"
    )
    for col in ("row", "kind", "phone cell", "name", "reason"):
        rejected.add_column(col)
    for issue in shown:
        rejected.add_row(
            str(issue.origin), issue.kind, issue.raw_phone, issue.name[:60], issue.reason
        )
    console.print(rejected)


@click.command("check")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--mapping", "mapping_spec", help="Mapping file or preset name.")
@click.option("--region", help="Default region for national numbers, e.g. PK.")
@click.option("--group", "groups", multiple=True, help="Group name or id for every contact.")
def check_command(
    sources: tuple[Path, ...], mapping_spec: str | None, region: str | None, groups: tuple[str, ...]
) -> None:
    """Show how SOURCE files would be read: columns, counts, normalised rows and rejections.

    Nothing is sent anywhere. Run it before a migration.
    """
    try:
        mapping = load_mapping(mapping_spec, region=region, groups=groups)
        result = ingest(list(sources), mapping)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or captured: do not squeeze the tables
    _sources(console, result)
    _counts(console, result)
    _preview(console, result)
