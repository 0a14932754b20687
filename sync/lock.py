"""One run per account at a time.

The lock is an `flock` on a file named after the account (a digest of base URL and secret, never
the secret itself). The kernel releases it when the holder dies, even by SIGKILL, so a lock file
left behind by a crashed run is recognised as stale: the file is there, the lock is not held.
The file records who holds it (pid, host, command, start time) for the message a second run gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sync.errors import ConfigError, LockedError
from sync.files import private_dir


@dataclass(frozen=True, slots=True)
class LockInfo:
    path: Path
    stale_holder: dict[str, object] | None  # what a crashed earlier run left behind, if anything


def lock_path(home: Path, base_url: str, secret: str) -> Path:
    digest = hashlib.sha256(f"{base_url}\0{secret}".encode()).hexdigest()[:16]
    return home / "locks" / f"account-{digest}.lock"


def _read_holder(fh: IO[str]) -> dict[str, object] | None:
    fh.seek(0)
    try:
        data = json.loads(fh.read() or "null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def account_lock(path: Path, *, run_id: str) -> Iterator[LockInfo]:
    """Hold the account's lock for the duration of the block, or raise LockedError at once
    (ConfigError when the lock file cannot be made: the run must not go on unlocked)."""
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the lock file {path}: {exc.strerror or exc}",
            hint="set CONTACT_SYNC_HOME to a directory this user can write to (it holds the "
            "lock and the caches)",
        ) from None
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fh) or {}
            since = holder.get("started", "?")
            raise LockedError(
                f"another run holds the lock for this account: pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, started {since} ({holder.get('command', '?')})",
                hint="wait for it to finish; the lock is released when that process ends, even "
                f"if it crashes (lock file: {path})",
            ) from None
        stale = _read_holder(fh)
        fh.seek(0)
        fh.truncate()
        json.dump(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "run_id": run_id,
                "command": " ".join(["contact-sync", *sys.argv[1:2]]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            fh,
        )
        fh.flush()
        try:
            yield LockInfo(path, stale)
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
