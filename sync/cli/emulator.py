"""`contact-sync emulator`: serve the WaSMS API emulator on loopback (options in, library out)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from sync.emulator import PERMISSIONS, Faults, StateError, Store, create_app, serve
from sync.emulator.faults import LostAs, Scope


def _parse_key(value: str) -> tuple[str, list[str]]:
    secret, sep, perms = value.partition(":")
    names = [p.strip() for p in perms.split(",") if p.strip()] if sep else list(PERMISSIONS)
    unknown = sorted(set(names) - set(PERMISSIONS))
    if not secret or unknown:
        raise click.BadParameter(
            f"expected SECRET:perm1,perm2 with permissions among {', '.join(PERMISSIONS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
            param_hint="--key",
        )
    return secret, names


def _open_store(
    state: Path | None, secret: str | None, country: str | None, quota: int | None, no_package: bool
) -> Store:
    """Load --state if it exists (flags given override its account settings), else a fresh one."""
    if state is not None and state.exists():
        try:
            store = Store.load(state)
        except StateError as exc:
            raise click.ClickException(f"{exc}. Remove the file or pass another --state.") from exc
        with store.lock:
            if country:
                store.account.country = country.upper()
            if quota is not None:
                store.account.quota = quota
            if no_package:
                store.account.package = False
        if secret and store.key(secret) is None:
            store.add_key(secret)
        store.save()
        return store
    return Store(
        (country or "PK").upper(), package=not no_package, quota=quota, secret=secret, path=state
    )


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free one).")
@click.option("--secret", help="API secret of the all-permissions key (default: generated).")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file that keeps the account across restarts (default: fresh, in memory).",
)
@click.option("--country", help="Account country for local phone numbers  [default: PK]")
@click.option("--quota", type=click.IntRange(min=0), help="Contact quota (default: unlimited).")
@click.option("--no-package", is_flag=True, help="Account without a package: create/contact fails.")
@click.option("--optout", multiple=True, metavar="PHONE", help="Seed an opted-out phone (repeat).")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="SECRET:PERM,...",
    help="Extra key with only these permissions, e.g. ro:get_contacts,get_groups (repeat).",
)
@click.option("--latency-ms", type=float, default=0.0, help="Delay added to every answer.")
@click.option("--jitter-ms", type=float, default=0.0, help="Random extra delay, 0..N ms.")
@click.option("--p429", type=click.FloatRange(0, 1), default=0.0, help="Proxy 429 + Retry-After.")
@click.option("--p503", type=click.FloatRange(0, 1), default=0.0, help="Proxy 503, HTML body.")
@click.option("--p502", type=click.FloatRange(0, 1), default=0.0, help="Proxy 502, HTML body.")
@click.option(
    "--lost", type=click.FloatRange(0, 1), default=0.0, help="Writes done, then answer lost."
)
@click.option(
    "--lost-as",
    type=click.Choice(["drop", "502", "either"]),
    default="drop",
    show_default=True,
    help="How a lost answer looks: dropped connection or proxy 502.",
)
@click.option("--retry-after", type=int, default=1, show_default=True, help="429's Retry-After.")
@click.option(
    "--faults-on",
    type=click.Choice(["all", "reads", "writes"]),
    default="all",
    show_default=True,
    help="Which endpoints the 429/502/503 faults hit (lost answers hit writes only).",
)
@click.option("--seed", type=int, help="Seed of the fault RNG, for reproducible chaos.")
def emulator_command(
    host: str,
    port: int,
    secret: str | None,
    state: Path | None,
    country: str | None,
    quota: int | None,
    no_package: bool,
    optout: tuple[str, ...],
    keys: tuple[str, ...],
    latency_ms: float,
    jitter_ms: float,
    p429: float,
    p503: float,
    p502: float,
    lost: float,
    lost_as: str,
    retry_after: int,
    faults_on: str,
    seed: int | None,
) -> None:
    """Serve a WaSMS.Net API emulator (endpoints under /api/) until Ctrl-C."""
    parsed_keys = [_parse_key(k) for k in keys]
    store = _open_store(state, secret, country, quota, no_package)
    for extra, perms in parsed_keys:
        store.add_key(extra, perms)
    listed = {o["phone"] for o in store.optouts()}
    for phone in optout:
        if phone.strip() not in listed:
            store.add_optout(phone)
    rules = [
        Faults(latency_ms=latency_ms, jitter_ms=jitter_ms),
        Faults(
            p429=p429,
            p503=p503,
            p502=p502,
            retry_after=retry_after,
            scope=cast(Scope, faults_on),
        ),
        Faults(lost=lost, lost_as=cast(LostAs, lost_as), scope="writes"),
    ]
    app = create_app(store, rules, seed=seed)

    def ready(base_url: str) -> None:
        click.echo(f"WaSMS emulator listening on {base_url}")
        click.echo(f"secret: {store.secret}")
        for extra, perms in parsed_keys:
            click.echo(f"key {extra}: {','.join(perms)}")
        if state is not None:
            click.echo(f"state: {state}")
        click.echo("Ctrl-C to stop.")

    serve(app, host, port, on_ready=ready)
