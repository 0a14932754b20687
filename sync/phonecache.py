"""Normalise many phone values at once: persistent cache, then column-wise, then cell by cell.

The cache is a marshal file under `cache_dir`, named after a schema number, the phonenumbers
version and a digest of our rules' source, so a metadata update (or a change to our rules)
starts a fresh cache; older files are
removed when the new one is written. It holds, per region, the raw cells and their `PhoneResult`
tuples (fields joined by \\x1f), each list NUL-joined into one string: marshal loads a few long
strings far faster than a dict of a million tuples, and looking raw cells up in a per-region dict
needs no key to be built. Writes are atomic (temporary file + rename); a damaged or
unreadable cache is ignored, never fatal.

Uncached values go to `sync.phonebatch` first, which answers the common shapes column-wise
(all but 7 of a 192k-value benchmark file). What it leaves is normalised cell by cell: above
`POOL_THRESHOLD` values, with more than one worker allowed and no other thread running in this
process, split over a forked ProcessPoolExecutor; otherwise here.
"""

from __future__ import annotations

import contextlib
import marshal
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, compress, repeat
from operator import is_
from pathlib import Path
from typing import Final

import phonenumbers

from sync.codehash import code_digest
from sync.phonebatch import normalize_column
from sync.phones import PhoneResult, normalize_many

SCHEMA: Final = 3
POOL_THRESHOLD: Final = 50_000
MAX_ENTRIES: Final = 5_000_000
Key = tuple[str, str | None]


def cache_file(cache_dir: Path) -> Path:
    """Named after the schema, the phonenumbers version and the source of our rules."""
    rules = code_digest("sync.phones", "sync.phonebatch", "sync.phonecache")
    return cache_dir / f"phones-v{SCHEMA}-pn{phonenumbers.__version__}-{rules}.marshal"


def _key(raw: str, region: str | None) -> str:
    return f"{region or ''}\x1f{raw}"


Stored = dict[str, dict[str, str]]  # region ("" for none) → raw cell → result fields joined by \x1f


def _load_raw(cache_dir: Path | None) -> Stored:
    """The cache as stored; empty when there is none or it cannot be read."""
    if cache_dir is None:
        return {}
    try:
        with cache_file(cache_dir).open("rb") as fh:
            regions = marshal.load(fh)  # noqa: S302 - our own file, in the user's cache dir
        out: Stored = {}
        for region, raws, results in regions:
            keys, values = raws.split("\x00"), results.split("\x00")
            if len(keys) != len(values) or not isinstance(region, str):
                return {}
            out[region] = dict(zip(keys, values, strict=True))
        return out
    except (OSError, EOFError, ValueError, TypeError, AttributeError):
        return {}


def load_cache(cache_dir: Path | None) -> dict[str, PhoneResult]:
    """The cache as a dict keyed by `region + "\\x1f" + raw cell`; empty when unreadable."""
    return {
        f"{region}\x1f{raw}": _result(v)
        for region, got in _load_raw(cache_dir).items()
        for raw, v in got.items()
    }


def _result(stored: str) -> PhoneResult:
    e164, kind, ext, reason = stored.split("\x1f")
    return (e164, kind, ext, reason)


def _storable(key: str) -> bool:
    return "\x00" not in key and "\x1f" not in key[key.index("\x1f") + 1 :]


def _save_joined(cache_dir: Path, regions: list[tuple[str, str, str]]) -> None:
    """Write the cache: (region, NUL-joined raw cells, NUL-joined results) per region."""
    target = cache_file(cache_dir)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".phones-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump(tuple(regions), fh)
            Path(tmp).replace(target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        for old in cache_dir.glob("phones-v*.marshal"):
            if old != target:
                old.unlink(missing_ok=True)


def save_cache(cache_dir: Path, data: dict[str, PhoneResult]) -> None:
    """Atomically replace the cache file; remove caches of other versions. Errors are ignored."""
    by_region: Stored = {}
    for key, res in data.items():
        if _storable(key):
            region, raw = key.split("\x1f", 1)
            by_region.setdefault(region, {})[raw] = "\x1f".join(res)
    _save_joined(
        cache_dir, [(r, "\x00".join(d), "\x00".join(d.values())) for r, d in by_region.items()]
    )


def _workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    return max(1, min(8, os.cpu_count() or 1))


_SHARED: list[Key] = []  # the values to normalise, inherited by forked workers


def _share(start: int, end: int, chunk: list[Key] | None) -> str:
    """A worker's share, as one string (results joined by \\x1f, then \\x00): cheap to send.

    Forked workers read their share from `_SHARED` (inherited), others get it as `chunk`.
    """
    todo = _SHARED[start:end] if chunk is None else chunk
    return "\x00".join(map("\x1f".join, normalize_many(todo)))


def _unshare(text: str, count: int) -> list[PhoneResult]:
    out: list[PhoneResult] = list(map(tuple, map(str.split, text.split("\x00"), repeat("\x1f"))))  # type: ignore[arg-type]
    if len(out) != count or any(len(r) != 4 for r in out):
        raise ValueError("a worker's results do not split into (e164, type, extension, reason)")
    return out


def _run(todo: list[Key], workers: int) -> list[PhoneResult]:
    """Results in `todo`'s order; over `workers` processes, this one included, when it pays."""
    global _SHARED
    # a process that runs other threads is not forked: the child could find a lock one of them
    # held (Python 3.12+ warns), and spawning would re-run a caller's unguarded main script. An
    # engine run reads its sources on a thread beside the remote listing, so its cells are
    # normalised here; sync.phonebatch answers most of them column-wise before they get here.
    if workers <= 1 or len(todo) <= POOL_THRESHOLD or threading.active_count() > 1:
        return normalize_many(todo)
    fork = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if fork else None
    # this process takes the first share itself (it would only wait otherwise); a smaller one, as
    # it also receives the other shares' results
    mine = len(todo) * 9 // (10 * workers)
    size = -(-(len(todo) - mine) // (workers - 1))
    bounds = [(i, min(i + size, len(todo))) for i in range(mine, len(todo), size)]
    _SHARED = todo
    try:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
            futures = [pool.submit(_share, a, b, None if fork else todo[a:b]) for a, b in bounds]
            out = normalize_many(todo[:mine])
            for (a, b), future in zip(bounds, futures, strict=True):
                out.extend(_unshare(future.result(), b - a))
    finally:
        _SHARED = []
    return out


def _compute(
    missing: list[tuple[str | None, list[str]]], todo: list[Key], workers: int
) -> list[PhoneResult]:
    """Results in `todo`'s order (`missing` flattened): column-wise (`normalize_column`) where
    that path is sure, the rest cell by cell (`_run`)."""
    found: list[PhoneResult | None] = []
    for region, raws in missing:
        found.extend(normalize_column(raws, region))
    left = list(compress(range(len(found)), map(is_, found, repeat(None))))
    if left:
        for k, res in zip(left, _run([todo[k] for k in left], workers), strict=True):
            found[k] = res
    return found  # type: ignore[return-value]  # no None is left


def normalize_values(
    pairs: Iterable[Key], *, cache_dir: Path | None = None, workers: int | None = None
) -> dict[Key, PhoneResult]:
    """The result for every distinct (raw, region) pair, from the cache or computed."""
    by_region: dict[str | None, dict[str, None]] = {}
    for raw, region in pairs:
        by_region.setdefault(region, {})[raw] = None
    found = normalize_by_region(by_region, cache_dir=cache_dir, workers=workers)
    return {(raw, region): res for region, got in found.items() for raw, res in got.items()}


def normalize_by_region(
    values: dict[str | None, dict[str, None]],
    *,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> dict[str | None, dict[str, PhoneResult]]:
    """Per region, the result for every raw value, from the cache or computed.

    Cache look-ups and result building run column-wise (map over the values), not per value.
    """
    cache = _load_raw(cache_dir)
    out: dict[str | None, dict[str, PhoneResult]] = {}
    missing: list[tuple[str | None, list[str]]] = []  # per region, the values not in the cache
    for region, given in values.items():
        # in the order given (dicts as ordered sets: the file's order), never a set's: that
        # follows the string hash seed, and with some seeds the results' temporaries freed into
        # half-used arenas that were never returned (a cold 1M-row plan peaked at 1.2 GB instead
        # of 0.74 GB); the same input also gives the same cache file. (They were sorted: 0.08 s
        # at 200k distinct values.)
        distinct = list(given)
        known = cache.get(region or "")
        if known:
            stored = list(map(known.get, distinct))
            if None not in stored:  # all cached: the usual re-run
                got = map(str.split, stored, repeat("\x1f"))  # type: ignore[arg-type]
                out[region] = dict(zip(distinct, map(tuple, got), strict=True))  # type: ignore[arg-type]
                continue
            hit = [s is not None for s in stored]
            out[region] = dict(
                zip(
                    compress(distinct, hit),
                    map(tuple, map(str.split, compress(stored, hit), repeat("\x1f"))),  # type: ignore[arg-type]
                    strict=True,
                )
            )
            distinct = list(compress(distinct, [not h for h in hit]))
        else:
            out[region] = {}
        if distinct:
            missing.append((region, distinct))
    if not missing:
        return out
    todo: list[Key] = list(
        chain.from_iterable(zip(raws, repeat(region)) for region, raws in missing)
    )
    computed = _compute(missing, todo, _workers(workers))
    at = 0
    new: dict[str, list[tuple[str, str]]] = {}  # per region: raw cells and results, as stored
    for region, raws in missing:
        results = computed[at : at + len(raws)] if len(missing) > 1 else computed
        at += len(raws)
        out[region].update(zip(raws, results, strict=True))
        if cache_dir is None:
            continue
        joined = "".join(raws)
        if "\x00" in joined or "\x1f" in joined:
            kept = [(r, v) for r, v in zip(raws, results, strict=True) if _storable("\x1f" + r)]
            raws, results = [r for r, _ in kept], [v for _, v in kept]
        if raws:
            rows = ("\x00".join(raws), "\x00".join(map("\x1f".join, results)))
            new.setdefault(region or "", []).append(rows)
    if cache_dir is None:
        return out
    if sum(map(len, cache.values())) + len(todo) > MAX_ENTRIES:
        cache = {}
    for region, known in cache.items():
        if known:  # the cached values go first; the new ones are not among them
            new.setdefault(region, []).insert(0, ("\x00".join(known), "\x00".join(known.values())))
    stored_regions = [
        (region, "\x00".join(r for r, _ in parts), "\x00".join(v for _, v in parts))
        for region, parts in new.items()
    ]
    if stored_regions:
        _save_joined(cache_dir, stored_regions)
    return out
