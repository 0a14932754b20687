"""Atomic, owner-only file writes: a reader sees the old file or the whole new one, never half.

Reports and plans hold personal data (names, phones), so they are created mode 0600 in
directories created 0700. `through_pipe` lets a native writer (polars) stream into a file we
hold open.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def _pipe_paths() -> bool:
    """Whether a pipe's write end can be opened by path as a native writer opens a file to
    write it (create, truncate): yes on Linux and macOS; elsewhere `through_pipe` buffers."""
    if not Path("/dev/fd").is_dir():
        return False
    read_end, write_end = os.pipe()
    try:
        fd = os.open(f"/dev/fd/{write_end}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
    except OSError:
        return False
    finally:
        os.close(read_end)
        os.close(write_end)
    return True


PIPE_PATHS = _pipe_paths()
_CHUNK = 1 << 20


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by the owner only; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` (mode 0600)."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o600)
        with tmp_path.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp_path.replace(path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically, owner-only."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path


def through_pipe(write: Callable[[str | IO[bytes]], Any], sink: Callable[[bytes], Any]) -> None:
    """Run `write(target)` (a native writer: polars' `write_csv`, `write_ndjson`) and hand what
    it writes to `sink`, in chunks of up to 1 MiB, in order.

    Given a path, polars writes from native code in large blocks without holding the GIL; given a
    Python file object, it calls back into Python for every small block (at a million report
    rows: 3x slower for NDJSON, 2x for CSV). The path here is the write end of a pipe
    (/dev/fd/N); a thread drains the read end into `sink`. A failure on either side is raised
    here, the sink's first: after a sink failure the rest is read and dropped, so the writer
    ends as usual (a writer meeting a closed pipe could be killed by SIGPIPE where a host
    program restored its default action).
    Where a pipe cannot be opened by path (`PIPE_PATHS`), the output is collected in memory and
    handed over once."""
    if not PIPE_PATHS:
        buf = io.BytesIO()
        write(buf)
        sink(buf.getvalue())
        return
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def drain() -> None:
        try:
            with open(read_end, "rb", buffering=0) as src:  # noqa: PTH123 - a descriptor
                while chunk := src.read(_CHUNK):
                    if failed:
                        continue  # read to the end: a closed pipe could kill with SIGPIPE
                    try:
                        sink(chunk)
                    except BaseException as exc:  # handed to the caller below
                        failed.append(exc)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=drain, name="pipe-drain", daemon=True)
    thread.start()
    try:
        write(f"/dev/fd/{write_end}")
    finally:
        os.close(write_end)
        thread.join()
        if failed:
            raise failed[0]
