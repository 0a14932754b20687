"""`through_pipe`: a native writer's output reaches the sink whole, in order, and any failure on
either side is raised to the caller without leaving a thread or a descriptor behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no pipes by path either
    fcntl = None  # type: ignore[assignment]

import polars as pl
import pytest

from sync import files
from sync.files import through_pipe

needs_pipes = pytest.mark.skipif(not files.PIPE_PATHS, reason="no /dev/fd on this system")


def _payload(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


def _writer(data: bytes, step: int = 65_537) -> Any:
    """A writer as polars is one: opens the path it is given (or writes to the object)."""

    def into(out: IO[bytes]) -> None:
        for i in range(0, len(data), step):
            out.write(data[i : i + step])

    def write(target: str | IO[bytes]) -> None:
        if isinstance(target, str):
            with Path(target).open("wb") as fh:
                into(fh)
        else:
            into(target)

    return write


def _open_descriptors() -> int:
    return sum(1 for _ in Path("/dev/fd").iterdir())


def _drains() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pipe-drain"]


@pytest.mark.parametrize("pipes", [True, False], ids=["pipe", "buffered"])
def test_everything_arrives_in_order(monkeypatch: pytest.MonkeyPatch, pipes: bool) -> None:
    monkeypatch.setattr(files, "PIPE_PATHS", pipes and files.PIPE_PATHS)
    data = _payload(3_000_000)  # several pipe buffers and several chunks
    got: list[bytes] = []
    through_pipe(_writer(data), got.append)
    assert b"".join(got) == data
    assert all(len(c) <= files._CHUNK for c in got) or not pipes
    assert not _drains()


def test_polars_writes_the_same_bytes_as_into_memory() -> None:
    frame = pl.DataFrame({"a": list(range(200_000)), "b": ['x,"y"\nz'] * 200_000})
    got: list[bytes] = []
    through_pipe(frame.write_csv, got.append)
    assert b"".join(got) == frame.write_csv().encode()
    got.clear()
    through_pipe(frame.write_ndjson, got.append)
    assert b"".join(got) == frame.write_ndjson().encode()


@needs_pipes
def test_a_failing_sink_is_raised_once_the_writer_has_ended() -> None:
    before = _open_descriptors()
    seen: list[int] = []

    def sink(chunk: bytes) -> None:
        seen.append(len(chunk))
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        through_pipe(_writer(_payload(5_000_000)), sink)
    assert len(seen) == 1  # not called again: the rest was read and dropped
    assert not _drains()
    assert _open_descriptors() == before


@needs_pipes
def test_a_failing_sink_never_kills_with_sigpipe() -> None:
    """A host program may restore SIGPIPE's default action (many CLIs do, for `| head`): the
    writer must never meet a closed pipe, or the whole process dies without a message."""
    code = textwrap.dedent(
        """
        import signal
        from sync.files import through_pipe
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

        def write(path):
            with open(path, "wb") as fh:
                for _ in range(64):
                    fh.write(b"x" * 65536)

        def sink(chunk):
            raise OSError(28, "No space left on device")

        try:
            through_pipe(write, sink)
        except OSError as exc:
            print("raised:", exc.strerror)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "raised: No space left on device"


@needs_pipes
def test_a_failing_writer_is_raised_after_what_it_wrote() -> None:
    before = _open_descriptors()
    got: list[bytes] = []

    def write(target: str | IO[bytes]) -> None:
        assert isinstance(target, str)
        with Path(target).open("wb") as fh:
            fh.write(b"half a batch")
        raise ValueError("polars could not write this")

    with pytest.raises(ValueError, match="could not write"):
        through_pipe(write, got.append)
    assert b"".join(got) == b"half a batch"
    assert not _drains()
    assert _open_descriptors() == before


def test_without_pipe_paths_the_output_is_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A system where a pipe cannot be opened by path (the probe fails) buffers instead."""

    def refuse(*args: object) -> int:
        raise OSError(6, "No such device or address")

    with monkeypatch.context() as m:
        m.setattr(files.os, "open", refuse)
        assert files._pipe_paths() is False
    monkeypatch.setattr(files, "PIPE_PATHS", False)
    targets: list[object] = []

    def write(target: str | IO[bytes]) -> None:
        targets.append(target)
        assert not isinstance(target, str)
        target.write(b"all at once")

    got: list[bytes] = []
    through_pipe(write, got.append)
    assert got == [b"all at once"] and len(targets) == 1


# -- DirectWriter ----------------------------------------------------------------------------------

_ONE_MIB = 1 << 20


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [5],
        [_ONE_MIB],
        [_ONE_MIB - 1, 2, _ONE_MIB + 3],
        [3 * _ONE_MIB + 17],
        [1000] * 3000,
    ],
)
def test_direct_writer_writes_exactly_what_it_was_given(tmp_path: Path, sizes: list[int]) -> None:
    data = _payload(sum(sizes))
    out = tmp_path / "out.bin"
    with files.DirectWriter(out) as w:
        at = 0
        for n in sizes:
            assert w.write(memoryview(data)[at : at + n]) == n
            at += n
    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600


def test_direct_writer_writes_the_usual_way_where_o_direct_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = files.os.open

    def no_direct(path: Any, flags: int, mode: int = 0o777) -> int:
        if flags & files._O_DIRECT:
            raise OSError(files.errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(files, "_O_DIRECT", 0x4000)
    monkeypatch.setattr(files.os, "open", no_direct)
    data = _payload(2 * _ONE_MIB + 5)
    with files.DirectWriter(tmp_path / "out.bin") as w:
        assert not w.direct
        w.write(data)
    assert (tmp_path / "out.bin").read_bytes() == data


@pytest.mark.skipif(not files._O_DIRECT, reason="no O_DIRECT on this system")
def test_direct_writer_falls_back_when_a_direct_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system may take the open but refuse the write (EINVAL): the rest goes the usual
    way, nothing lost."""
    real_write = files.os.write
    refused: list[int] = []

    def picky(fd: int, data: Any) -> int:
        flags = files.fcntl.fcntl(fd, files.fcntl.F_GETFL)
        if flags & files._O_DIRECT and not refused:
            refused.append(fd)
            raise OSError(files.errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", picky)
    data = _payload(3 * _ONE_MIB + 11)
    with files.DirectWriter(tmp_path / "out.bin") as w:
        w.write(data)
    assert refused and not w.direct
    assert (tmp_path / "out.bin").read_bytes() == data


def _steps_raising(steps: list[Callable[[], object]]) -> list[OSError]:
    raised = []
    for step in steps:
        try:
            step()
        except OSError as exc:
            raised.append(exc)
    return raised


def test_direct_writer_raises_other_errors_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full blocks are written on the writer's thread: a failure there is raised by the next
    `write` or by `close`, once, and the descriptor is closed all the same."""

    def full(fd: int, data: Any) -> int:
        raise OSError(files.errno.ENOSPC, "No space left on device")

    w = files.DirectWriter(tmp_path / "out.bin")
    monkeypatch.setattr(files.os, "write", full)
    data = _payload(_ONE_MIB + 5)
    raised = _steps_raising([lambda: w.write(data), lambda: w.write(data), w.close])
    assert [exc.errno for exc in raised] == [files.errno.ENOSPC]
    w.close()  # idempotent: nothing raised again
    with pytest.raises(OSError):
        os.fstat(w._fd)


def test_direct_writer_writes_nothing_after_a_failed_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks handed over after the one that failed, and the tail, are dropped: the file
    is removed anyway (`atomic_path`), and a disk that is full is not asked again and again."""
    real_write = files.os.write
    calls: list[int] = []

    def second_fails(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 2:
            raise OSError(files.errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(files.os, "write", second_fails)
    out = tmp_path / "out.bin"
    w = files.DirectWriter(out)
    raised = _steps_raising([lambda: w.write(_payload(6 * _ONE_MIB + 7)), w.close])
    assert [exc.errno for exc in raised] == [files.errno.EIO]
    assert calls == [_ONE_MIB, _ONE_MIB]
    assert out.stat().st_size == _ONE_MIB


def test_direct_writer_keeps_the_order_of_many_blocks_in_flight(tmp_path: Path) -> None:
    """More blocks than `DEPTH`, each written on the thread while the next fill: in order."""
    data = _payload(3 * files.DirectWriter.DEPTH * _ONE_MIB + 123)
    out = tmp_path / "out.bin"
    with files.DirectWriter(out) as w:
        for at in range(0, len(data), 300_007):
            w.write(data[at : at + 300_007])
    assert out.read_bytes() == data


@pytest.mark.skipif(
    not files.PIPE_PATHS or not hasattr(fcntl, "F_GETPIPE_SZ"), reason="Linux pipes only"
)
def test_the_pipe_holds_a_mebibyte_where_the_system_allows() -> None:
    """polars writes its output in large blocks; with the usual 64 KiB pipe, it and the draining
    thread took turns every 64 KiB."""
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    seen: list[int] = []

    def write(target: str | IO[bytes]) -> None:
        assert isinstance(target, str)
        seen.append(fcntl.fcntl(int(target.rsplit("/", 1)[1]), fcntl.F_GETPIPE_SZ))

    files.through_pipe(write, lambda chunk: None)
    assert len(seen) == 1 and seen[0] >= min(1 << 20, limit)


@pytest.mark.skipif(not files.PIPE_PATHS, reason="pipes by path only")
def test_a_pipe_drains_straight_into_a_direct_writer(tmp_path: Path) -> None:
    """`through_pipe` into a `DirectWriter`: the pipe is read into its blocks, in order, across
    several blocks, after what was written before."""
    data = _payload(3 * _ONE_MIB + 4321)
    out = tmp_path / "out.bin"
    with files.DirectWriter(out) as w:
        w.write(b"head,")
        through_pipe(_writer(data), w)
    assert out.read_bytes() == b"head," + data


@pytest.mark.skipif(not files.PIPE_PATHS, reason="pipes by path only")
def test_a_failed_block_while_draining_is_raised_and_the_writer_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block that cannot be written is raised by `through_pipe`; the pipe is still read to its
    end, so the native writer finishes instead of blocking or meeting a closed pipe."""

    def full(fd: int, data: Any) -> int:
        raise OSError(files.errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    threads = threading.active_count()
    w = files.DirectWriter(tmp_path / "out.bin")
    raised = _steps_raising([lambda: through_pipe(_writer(_payload(12 * _ONE_MIB)), w), w.close])
    assert [exc.errno for exc in raised] == [files.errno.ENOSPC]
    assert threading.active_count() == threads  # no drain or block thread left behind
