"""The last ingest result of a set of sources, kept for the re-run over the same bytes.

A nightly job mostly re-reads the file it read the night before. What ingest returns depends only
on the sources' bytes and paths, the mapping, the code of the ingest modules and the version
of phonenumbers; when none of them changed, the snapshot stands in for reading and normalising.

One slot per (source paths, mapping), replaced by every run that reads; a slot whose key does not
match is a miss; only the `KEEP` most recently used slots are kept. The key holds a SHA-256 of
every source's bytes, so a file rewritten with the same content still hits and any edit misses.
Stored column-wise with marshal (a few long lists load far faster than a million pickled
objects), owner-only, without fsync: a torn or unreadable snapshot is a miss, never an error. It
holds personal data, like the reports: it lives in the user's cache directory (`CONTACT_SYNC_HOME`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import marshal
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import phonenumbers

from sync import __version__
from sync.codehash import code_digest
from sync.mapping import Mapping
from sync.models import DesiredContact, IngestResult, Origin, RowIssue, SourceInfo
from sync.table import Table, column

SCHEMA: Final = 2  # 2: the sources' stats on the second line
KEEP: Final = 4  # snapshots kept (most recently used first); each is about the sources' size
# the modules whose code decides the ingest result: a change to any of them is a miss
_INGEST_MODULES: Final = (
    "sync.read",
    "sync.mapping",
    "sync.names",
    "sync.phones",
    "sync.phonebatch",
    "sync.phonecache",
    "sync.normalize",
    "sync.models",
    "sync.bulk",
    "sync.snapshot",
)
_Stat = tuple[int, int, int]  # size, mtime_ns, inode


def slot(cache_dir: Path, paths: Sequence[Path], mapping: Mapping) -> Path:
    """The snapshot file for these sources read with this mapping."""
    h = hashlib.sha256(repr((SCHEMA, [str(p) for p in paths], mapping)).encode())
    return cache_dir / f"ingest-{h.hexdigest()[:24]}.marshal"


def stats(paths: Sequence[Path]) -> list[_Stat]:
    out = []
    for p in paths:
        st = p.stat()
        out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return out


def key(paths: Sequence[Path], mapping: Mapping) -> str:
    """What the ingest result depends on, as a digest: versions and the source of the ingest
    modules, the mapping, the paths and their bytes."""
    rules = code_digest(*_INGEST_MODULES)
    h = hashlib.sha256(
        repr((SCHEMA, __version__, rules, phonenumbers.__version__, mapping)).encode("utf-8")
    )
    for p in paths:
        with p.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        h.update(f"\0{p}\0{digest}".encode())
    return h.hexdigest()


def load(path: Path, want: Callable[[], str], seen: Sequence[_Stat]) -> IngestResult | None:
    """The stored result when its key is `want()`; None when missing, stale or unreadable.

    `want` gives the key when it is ready (the sources' bytes are hashed on another thread).
    When the sources' sizes, times and inodes are still those stored (`seen`), the result is
    decoded before the key is known, and dropped if the key turns out to differ; otherwise
    the key is awaited first."""
    try:
        with path.open("rb") as fh:
            stored = fh.readline().rstrip(b"\n").decode()
            likely = fh.readline().rstrip(b"\n").decode() == repr(list(seen))
            if not likely and stored != want():
                return None
            # one read per part, then loads: marshal.load(file) reads through a Python-level
            # call per object, ten times slower at a million rows
            parts = []
            while head := fh.read(8):
                size = int.from_bytes(head, "little")
                parts.append(marshal.loads(fh.read(size)))  # noqa: S302 - our own file
        if stored != want():
            return None
        return _decode(parts)
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def save(path: Path, key_: str, result: IngestResult, seen: Sequence[_Stat] = ()) -> None:
    """Replace the snapshot (owner-only, atomically). Failures are ignored: it is only a cache.
    `seen`: the sources' `stats` when they were read (see `load`).

    Written a column at a time, so at most one column's copy is held besides the result."""
    with contextlib.suppress(OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ingest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(f"{key_}\n{list(seen)!r}\n".encode())
                for version, part in _encode(result):
                    data = marshal.dumps(part(), version)
                    fh.write(len(data).to_bytes(8, "little"))
                    fh.write(data)
                    del data
            Path(tmp).replace(path)
        finally:
            Path(tmp).unlink(missing_ok=True)


# -- column-wise encoding --------------------------------------------------------------------------

_CONTACT: Final = ("phone", "name", "groups", "raw_phone", "number_type", "extension", "notes")
_ISSUE: Final = ("kind", "reason", "raw_phone", "name", "phone", "columns")
_ORIGIN: Final = ("file", "sheet", "row")


# columns of a few distinct values: each value is made one object, stored once, and the rest
# refer to it (marshal writes a reference to an object it has written): at a million rows, the
# number types alone loaded in 67 ms, 5 ms so. (Issue kinds, files and sheets are shared objects
# already; these two never hold None.)
_FEW_VALUES: Final = frozenset({"number_type", "reason"})
# columns of values used once each: written without marshal's reference table, which cost more
# than the values (a million names: 0.16 → 0.06 s; the file grows ~15%)
# (not the invalid rows' `columns`: their keys, the header's names, repeat in every row)
_ONCE: Final = frozenset({"phone", "name", "raw_phone", "row"})
_Part = tuple[int, Callable[[], Any]]  # marshal version, and the part made when it is written


def _column(items: Sequence[Any], *path: str) -> _Part:
    """A column of the rows (a field of a field: `"origin", "file"`), made when written."""

    def make() -> list[Any]:
        values: Sequence[Any] = items
        for name in path:
            values = column(values, name)
        if path[-1] in _FEW_VALUES and _unshared(values):
            one = {v: v for v in set(values)}
            return list(map(one.__getitem__, values))
        return list(values)

    return (2 if path[-1] in _ONCE else marshal.version, make)


def _unshared(values: Sequence[Any]) -> bool:
    """Whether equal values are separate objects, judged by the first 256: fresh results share
    their few strings already (the 0.2 s of making them one object per value at a million rows
    is then saved); results split from the normalisation cache do not."""
    head = values[:256]
    return len(set(map(id, head))) > len(set(head))


def _encode(r: IngestResult) -> Iterator[_Part]:
    """The parts, in `_decode`'s order, each made only when it is written."""
    cs, iss = r.contacts, r.issues
    v = marshal.version
    yield v, lambda: (r.rows_read, [dataclasses.astuple(s) for s in r.sources])
    yield from (_column(cs, f) for f in _CONTACT)
    yield from (_column(cs, "origin", f) for f in _ORIGIN)
    yield (
        v,
        lambda: {
            i: [(o.file, o.sheet, o.row) for o in others]
            for i, others in enumerate(column(cs, "duplicates"))
            if others
        },
    )
    yield from (_column(iss, f) for f in _ISSUE)
    yield from (_column(iss, "origin", f) for f in _ORIGIN)
    yield (
        v,
        lambda: [
            None if i.winner is None else (i.winner.file, i.winner.sheet, i.winner.row) for i in iss
        ],
    )


def _decode(parts: list[Any]) -> IngestResult:
    (rows_read, sources), *rest = parts
    phone, name, groups, raw, kind, ext, notes, *rest = rest
    o_file, o_sheet, o_row, duplicates, *rest = rest
    i_kind, reason, i_raw, i_name, i_phone, columns, *rest = rest
    i_file, i_sheet, i_row, winners_at = rest
    n = len(phone)
    dups: list[tuple[Origin, ...]] = [()] * n
    for i, origins in duplicates.items():
        dups[i] = tuple(Origin(*o) for o in origins)
    # the contacts stay columns (a Table): at a million rows, making them and their origins
    # here was half the load time, and the plan reads them a column at a time
    origins = Table(Origin, {"file": o_file, "sheet": o_sheet, "row": o_row})
    contacts: Table[DesiredContact] = Table(
        DesiredContact,
        {
            "phone": phone,
            "name": name,
            "groups": groups,
            "origin": origins,
            "raw_phone": raw,
            "number_type": kind,
            "extension": ext,
            "duplicates": dups,
            "notes": notes,
        },
    )
    winners: Table[Origin | None] = Table(
        Origin,
        {
            "file": [w and w[0] for w in winners_at],
            "sheet": [w and w[1] for w in winners_at],
            "row": [w and w[2] for w in winners_at],
        },
        optional="file",
    )
    issues: Table[RowIssue] = Table(
        RowIssue,
        {
            "origin": Table(Origin, {"file": i_file, "sheet": i_sheet, "row": i_row}),
            "kind": i_kind,
            "reason": reason,
            "raw_phone": i_raw,
            "name": i_name,
            "phone": i_phone,
            "winner": winners,
            "columns": columns,
        },
    )
    return IngestResult(contacts, issues, int(rows_read), tuple(SourceInfo(*s) for s in sources))


def ingest_cached(
    paths: Sequence[Path], mapping: Mapping, cache_dir: Path
) -> tuple[IngestResult, bool]:
    """`ingest(paths, mapping)`, from the snapshot when the sources are unchanged; and whether it
    was. A source that changes while it is read is not snapshotted."""
    try:
        before = stats(paths)
    except OSError:  # a missing or unreadable source: ingest says so properly
        return _ingest(paths, mapping, cache_dir), False
    where = slot(cache_dir, paths, mapping)
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-key") as pool:
        # the sources' bytes are hashed there (hashlib lets go of the GIL) while the snapshot
        # is decoded here: at a million rows, 58 MB of CSV, ~0.05 s
        wanted = pool.submit(key, paths, mapping)
        found = load(where, wanted.result, before)
        error = wanted.exception()
    # (ingest may fork a process pool: only once the thread above has ended)
    if isinstance(error, OSError):  # a source that went away meanwhile: ingest says so properly
        return _ingest(paths, mapping, cache_dir), False
    want = wanted.result()  # any other error is raised here
    if found is not None:
        with contextlib.suppress(OSError):
            os.utime(where)  # used: the last to be evicted
        return found, True
    result = _ingest(paths, mapping, cache_dir)
    with contextlib.suppress(OSError):
        if stats(paths) == before:
            save(where, want, result, before)
            evict(cache_dir, keep=KEEP)
    return result, False


def _ingest(paths: Sequence[Path], mapping: Mapping, cache_dir: Path) -> IngestResult:
    """`sync.normalize.ingest`, imported when a source must be read: a snapshot hit (the nightly
    case) never loads the readers and normalisers (~20 ms of start-up)."""
    from sync.normalize import ingest

    return ingest(paths, mapping, cache_dir=cache_dir)


def evict(cache_dir: Path, keep: int) -> None:
    """Keep the `keep` most recently used snapshots: a job that reads a new file name every
    night (`export-2026-11-26.csv`) must not fill the disk with a slot per night."""
    found = []
    for p in cache_dir.glob("ingest-*.marshal"):
        with contextlib.suppress(OSError):
            found.append((p.stat().st_mtime_ns, p))
    for _, old in sorted(found, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
