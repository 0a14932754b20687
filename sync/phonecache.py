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


def load_cache(cache_dir: Path | None) -> dict[str, PhoneResult]:
    """The cache as a dict; empty when there is none or it cannot be read."""
    if cache_dir is None:
        return {}
    try:
        with cache_file(cache_dir).open("rb") as fh:
            keys, values = marshal.load(fh)  # noqa: S302 - our own file, in the user's cache dir
        pairs = zip(keys.split("\x00"), values.split("\x00"), strict=True)
        return {k: tuple(v.split("\x1f")) for k, v in pairs}
    except (OSError, EOFError, ValueError, TypeError, AttributeError):
        return {}


def save_cache(cache_dir: Path, data: dict[str, PhoneResult]) -> None:
    """Atomically replace the cache file; remove caches of other versions. Errors are ignored.

    Stored as two NUL-joined strings (keys, values): marshal loads two strings far faster than a
    dict of a million tuples.
    """
    target = cache_file(cache_dir)
    keys = [k for k in data if "\x00" not in k and "\x1f" not in k[k.index("\x1f") + 1 :]]
    values = ["\x1f".join(data[k]) for k in keys]
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".phones-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump(("\x00".join(keys), "\x00".join(values)), fh)
            Path(tmp).replace(target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in cache_dir.glob("phones-v*.marshal"):
            if old != target:
                old.unlink(missing_ok=True)


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
    cache = load_cache(cache_dir)
    results: dict[Key, PhoneResult] = {}
    todo: list[Key] = []
    for pair in pairs:
        hit = cache.get(_key(*pair)) if cache else None
        if hit is not None:
            results[pair] = hit
        else:
            todo.append(pair)
    if todo:
        for pair, res in zip(todo, _run(todo, _workers(workers)), strict=True):
            results[pair] = res
        if cache_dir is not None:
            if len(cache) + len(todo) > MAX_ENTRIES:
                cache = {}
            for pair in todo:
                cache[_key(*pair)] = results[pair]
            save_cache(cache_dir, cache)
    return results
