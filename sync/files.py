"""Atomic, owner-only file writes: a reader sees the old file or the whole new one, never half.

Reports and plans hold personal data (names, phones), so they are created mode 0600 in
directories created 0700. `through_pipe` lets a native writer (polars) stream into a file we
hold open; `DirectWriter` writes a large output without keeping it in the page cache.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not on Windows, which has no O_DIRECT either
    fcntl = None  # type: ignore[assignment]


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


def through_pipe(
    write: Callable[[str | IO[bytes]], Any], sink: Callable[[bytes], Any] | DirectWriter
) -> None:
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
    handed over once. A `DirectWriter` as the sink gets the pipe read straight into its blocks
    (`DirectWriter.write_from`)."""
    if not PIPE_PATHS:
        buf = io.BytesIO()
        write(buf)
        (sink.write if isinstance(sink, DirectWriter) else sink)(buf.getvalue())
        return
    read_end, write_end = os.pipe()
    _widen(write_end)
    failed: list[BaseException] = []

    def drain() -> None:
        try:
            with open(read_end, "rb", buffering=0) as src:  # noqa: PTH123 - a descriptor
                try:
                    if isinstance(sink, DirectWriter):
                        sink.write_from(src)
                    else:
                        while chunk := src.read(_CHUNK):
                            sink(chunk)
                except BaseException as exc:  # handed to the caller below
                    failed.append(exc)
                    while src.read(_CHUNK):  # read to the end: a closed pipe could kill with
                        pass  # SIGPIPE
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


def _widen(pipe: int) -> None:
    """Give the pipe a 1 MiB buffer where the system allows (Linux: up to pipe-max-size, 1 MiB
    by default). With the usual 64 KiB, the writer and the draining thread took turns every
    64 KiB: a warm 1M-row run passes ~0.4 GB through pipes."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # a lower limit, or no such control: as it was
            fcntl.fcntl(pipe, set_size, _CHUNK)


_O_DIRECT: int = getattr(os, "O_DIRECT", 0) if fcntl is not None else 0
_BLOCK = 1 << 20  # a direct write's size: a multiple of any device's block size (512 B-4 KiB)


class DirectWriter:
    """A new file written front to back, past the page cache where the system allows
    (`O_DIRECT`, in aligned blocks of 1 MiB; the last, partial block the usual way).

    The reports and plan.json of a million-row run are ~0.5 GB written once, made durable
    (`atomic_path` fsyncs them) and rarely read back soon. Through the page cache each run took
    0.5 GB of fresh pages (evicting what other programs keep there), and on a VM whose memory
    the host takes back when free (balloon free-page reporting) every fresh page costs a fault
    in the host: writing 520 MB and fsyncing took 1.2-1.6 s here, direct 0.23-0.26 s. Where
    O_DIRECT is missing or refused (tmpfs on older kernels, macOS, Windows), or a direct write
    fails with EINVAL, it writes the usual way: the same bytes either way.

    A direct write returns only once the device has the block (~0.5 ms per MiB here), and
    whoever feeds this writer (polars, through a pipe) waited with it: full blocks are written
    by a thread of the writer's own, in order, while the next ones fill (`DEPTH` blocks in all).
    A failed write is raised by the `write` or `close` that comes next, once."""

    DEPTH = 4

    def __init__(self, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        self._direct = bool(_O_DIRECT)
        try:
            self._fd = os.open(path, flags | _O_DIRECT, 0o600)
        except OSError as exc:
            if not self._direct or exc.errno != errno.EINVAL:
                raise
            self._direct = False
            self._fd = os.open(path, flags, 0o600)
        self._buf = mmap.mmap(-1, _BLOCK)  # page-aligned, as O_DIRECT wants
        self._used = 0
        self._spare: list[mmap.mmap] = []  # blocks written, to fill again
        self._writing: deque[tuple[Future[None], mmap.mmap]] = deque()  # in order
        self._thread: ThreadPoolExecutor | None = None  # made with the first full block
        self._failed = False  # a write failed: nothing more is written

    @property
    def direct(self) -> bool:
        """Whether the writes so far went past the page cache."""
        return self._direct

    def write(self, data: bytes | bytearray | memoryview) -> int:
        with memoryview(data) as view, view.cast("B") as src:
            at, size = 0, len(src)
            while at < size:
                take = min(_BLOCK - self._used, size - at)
                self._buf[self._used : self._used + take] = src[at : at + take]
                self._used += take
                at += take
                if self._used == _BLOCK:
                    self._hand_over()
            return size

    def write_from(self, src: io.RawIOBase) -> None:
        """Append all that `src` gives until its end, read straight into the blocks: the kernel
        copies, without the GIL, and no bytes object is made (at a million report rows,
        report.csv's 150 MB came through Python in fresh 1 MiB objects, each copied again)."""
        while True:
            with memoryview(self._buf) as view, view[self._used :] as room:
                got = src.readinto(room)
            if not got:
                return
            self._used += got
            if self._used == _BLOCK:
                self._hand_over()

    def _hand_over(self) -> None:
        """The full block to the thread; an empty one to fill (a free one, else the oldest
        once written: its error, if any, raised here)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, "direct-write")
        full = self._buf
        self._writing.append((self._thread.submit(self._write_all, full), full))
        self._used = 0
        while self._writing and self._writing[0][0].done():
            self._spare.append(self._settle_oldest())
        if self._spare:
            self._buf = self._spare.pop()
        elif len(self._writing) < self.DEPTH:
            self._buf = mmap.mmap(-1, _BLOCK)
        else:
            self._buf = self._settle_oldest()

    def _settle_oldest(self) -> mmap.mmap:
        done, block = self._writing.popleft()
        done.result()
        return block

    def _write_all(self, data: mmap.mmap | memoryview) -> None:
        if self._failed:
            return
        try:
            self._write_through(data)
        except BaseException:
            self._failed = True
            raise

    def _write_through(self, data: mmap.mmap | memoryview) -> None:
        with memoryview(data) as view:
            while view:
                try:
                    done = os.write(self._fd, view)
                except OSError as exc:
                    if not self._direct or exc.errno != errno.EINVAL:
                        raise
                    self._buffered()  # this file system takes no direct write after all
                    continue
                view = view[done:]
                if done % _BLOCK:  # a short write: the offset is no longer aligned
                    self._buffered()

    def _buffered(self) -> None:
        if self._direct:
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_O_DIRECT)
            self._direct = False

    def close(self) -> None:
        """Write what is left (unaligned: the usual way) and close. Idempotent. After a failed
        write, nothing more is written; the error is raised unless `write` raised it already."""
        if self._fd < 0:
            return
        try:
            failed = self._finish_writing()
            if failed is not None:
                raise failed
            if self._used and not self._failed:
                self._buffered()
                with memoryview(self._buf) as view:
                    self._write_all(view[: self._used])
        finally:
            os.close(self._fd)
            self._fd = -1
            # after a failed write, its traceback may still hold a view of a block: the
            # block is then freed with the last view instead
            for block in (self._buf, *self._spare):
                with contextlib.suppress(BufferError):
                    block.close()

    def _finish_writing(self) -> BaseException | None:
        """Wait for the blocks handed over; the first error among them, if any."""
        failed = None
        while self._writing:
            done, block = self._writing.popleft()
            failed = failed or done.exception()
            self._spare.append(block)
        if self._thread is not None:
            self._thread.shutdown()
        return failed

    def __enter__(self) -> DirectWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
