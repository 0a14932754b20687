"""Normalise many phone values at once: persistent cache, then in-process or over the cores.

The cache is a marshal file under `cache_dir`, named after a schema number and the phonenumbers
version, so a metadata update (or a change to our rules) starts a fresh cache; older files are
removed when the new one is written. Keys are `region + "\\x1f" + raw cell`; values are the
`PhoneResult` tuples of `sync.phones`. Writes are atomic (temporary file + rename); a damaged or
unreadable cache is ignored, never fatal.

Above `POOL_THRESHOLD` uncached values (and with more than one worker allowed) the values are split
over a ProcessPoolExecutor; below it, process start-up would cost more than it saves.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from itertools import compress, repeat
from pathlib import Path
from typing import Final

import phonenumbers

from sync.phones import PhoneResult, normalize_many

SCHEMA: Final = 2
POOL_THRESHOLD: Final = 50_000
MAX_ENTRIES: Final = 5_000_000
Key = tuple[str, str | None]


def cache_file(cache_dir: Path) -> Path:
    return cache_dir / f"phones-v{SCHEMA}-pn{phonenumbers.__version__}.marshal"


def _key(raw: str, region: str | None) -> str:
    return f"{region or ''}\x1f{raw}"


def _load_raw(cache_dir: Path | None) -> dict[str, str]:
    """The cache as stored: key → the result's fields joined by \\x1f; empty when unreadable."""
    if cache_dir is None:
        return {}
    try:
        with cache_file(cache_dir).open("rb") as fh:
            keys, values = marshal.load(fh)  # noqa: S302 - our own file, in the user's cache dir
        keys, values = keys.split("\x00"), values.split("\x00")
        if len(keys) != len(values):
            return {}
        return dict(zip(keys, values, strict=True))
    except (OSError, EOFError, ValueError, TypeError, AttributeError):
        return {}


def load_cache(cache_dir: Path | None) -> dict[str, PhoneResult]:
    """The cache as a dict; empty when there is none or it cannot be read."""
    return {k: _result(v) for k, v in _load_raw(cache_dir).items()}


def _result(stored: str) -> PhoneResult:
    e164, kind, ext, reason = stored.split("\x1f")
    return (e164, kind, ext, reason)


def _storable(key: str) -> bool:
    return "\x00" not in key and "\x1f" not in key[key.index("\x1f") + 1 :]


def _save_raw(cache_dir: Path, data: dict[str, str]) -> None:
    target = cache_file(cache_dir)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".phones-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump(("\x00".join(data), "\x00".join(data.values())), fh)
            Path(tmp).replace(target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in cache_dir.glob("phones-v*.marshal"):
            if old != target:
                old.unlink(missing_ok=True)


def save_cache(cache_dir: Path, data: dict[str, PhoneResult]) -> None:
    """Atomically replace the cache file; remove caches of other versions. Errors are ignored.

    Stored as two NUL-joined strings (keys, values): marshal loads two strings far faster than a
    dict of a million tuples.
    """
    _save_raw(cache_dir, {k: "\x1f".join(v) for k, v in data.items() if _storable(k)})


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    return max(1, min(8, os.cpu_count() or 1))


def _run(todo: list[Key], workers: int) -> list[PhoneResult]:
    if workers <= 1 or len(todo) <= POOL_THRESHOLD:
        return normalize_many(todo)
    size = -(-len(todo) // (workers * 4))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    out: list[PhoneResult] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(normalize_many, chunks):
            out.extend(part)
    return out


def normalize_values(
    pairs: Iterable[Key], *, cache_dir: Path | None = None, workers: int | None = None
) -> dict[Key, PhoneResult]:
    """The result for every distinct (raw, region) pair, from the cache or computed."""
    by_region: dict[str | None, set[str]] = {}
    for raw, region in pairs:
        by_region.setdefault(region, set()).add(raw)
    found = normalize_by_region(by_region, cache_dir=cache_dir, workers=workers)
    return {(raw, region): res for region, got in found.items() for raw, res in got.items()}


def normalize_by_region(
    values: dict[str | None, set[str]],
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> dict[str | None, dict[str, PhoneResult]]:
    """Per region, the result for every raw value, from the cache or computed.

    Cache look-ups and result building run column-wise (map over the values), not per value.
    """
    cache = _load_raw(cache_dir)
    out: dict[str | None, dict[str, PhoneResult]] = {}
    todo: list[Key] = []
    for region, raws in values.items():
        distinct = list(raws)
        if cache:
            stored = list(map(cache.get, map(f"{region or ''}\x1f".__add__, distinct)))
            hit = [s is not None for s in stored]
            out[region] = dict(
                zip(
                    compress(distinct, hit),
                    map(tuple, map(str.split, compress(stored, hit), repeat("\x1f"))),  # type: ignore[arg-type]
                    strict=True,
                )
            )
            todo.extend(zip(compress(distinct, [not h for h in hit]), repeat(region)))
        else:
            out[region] = {}
            todo.extend(zip(distinct, repeat(region)))
    if todo:
        computed = _run(todo, _workers(workers))
        for (raw, region), res in zip(todo, computed, strict=True):
            out[region][raw] = res
        if cache_dir is not None:
            if len(cache) + len(todo) > MAX_ENTRIES:
                cache = {}
            for (raw, region), res in zip(todo, computed, strict=True):
                key = _key(raw, region)
                if _storable(key):
                    cache[key] = "\x1f".join(res)
            _save_raw(cache_dir, cache)
    return out
