"""Measuring child processes, emulators to run them against, and the results table.

Every measured thing is a fresh child process, so start-up is included and memory is per run:

- wall time: `perf_counter` around spawn → `os.wait4` (exact, no polling lag; it includes the
  launcher below, ~25 ms, on both sides of every comparison);
- peak memory: the larger of the command's own peak RSS (`ru_maxrss` from `wait4`) and the
  peak of the sum of PSS over its whole process tree, sampled every 10 ms while it has child
  processes (a process pool's workers use memory at the same time as their parent). Only then:
  reading a process's PSS walks its page tables under its memory-map lock, which stalls the
  process's own allocations; sampled all along, a 1M-row plan ran ~25% slower than unobserved
  (measured: 10.9 s against 8.3 s). Alone, the process's peak is exactly its ru_maxrss.
  Linux carries the RSS of the forked copy of the parent into the child's ru_maxrss across exec
  (measured: a 300 MB parent gave an 8 MB child a ru_maxrss of 311 MB), so the command is
  started by a tiny launcher (`python -S`, ~10 MB) rather than from this process. PSS, not a
  sum of RSS: forked pool workers share their parent's pages, which RSS counts once per process
  and PSS divides among them.
  Even so, the sampler slows what it watches: a warm 1M-row plan had one child (the report.xlsx
  helper, since replaced by a thread) for exactly its report stage, and walking the 700 MB
  parent every 10 ms then stalled it. Timed runs therefore pass `sample_every=None` (peak:
  the command's ru_maxrss alone), and the cases measure memory in a run of its own.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


class BenchError(RuntimeError):
    """A measured child failed: its output is in the message."""


@dataclass(slots=True)
class ChildRun:
    wall: float  # seconds, spawn to reap
    peak_rss: int  # bytes
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str, ok: Sequence[int] = (0,)) -> ChildRun:
        if self.returncode not in ok:
            tail = (self.stderr or self.stdout)[-3000:]
            raise BenchError(f"{what}: exit code {self.returncode}\n{tail}")
        return self


def _pss(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        info = proc.memory_full_info()
        return int(getattr(info, "pss", info.rss))
    return 0


# A tiny launcher (python -S, ~10 MB) forks and execs the measured command and reports its
# wait4 rusage: the child's ru_maxrss then carries only the launcher's size, not ours.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss * 1024))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    sample_every: float | None = 0.01,
) -> ChildRun:
    """Run `argv` to completion; its wall time, peak RSS, exit code and output. With
    `sample_every=None` nothing watches the process tree: the peak is the command's own."""
    full_env = {**os.environ, **(env or {})}
    # No fixed PYTHONHASHSEED: measure the program as it is run. (A cold 1M plan once peaked at
    # 1,174 MB with PYTHONHASHSEED=0 and 783-788 MB with other seeds: values were normalised in
    # set order. In sorted order now, 741 MB whatever the seed.)
    # `python -m benchmarks.…` children import this package from the repository, wherever we run
    paths = [str(ROOT), *filter(None, full_env.get("PYTHONPATH", "").split(os.pathsep))]
    full_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    with tempfile.TemporaryDirectory(prefix="bench-out-") as tmp:
        out_path, err_path = Path(tmp, "out"), Path(tmp, "err")
        with out_path.open("wb") as out, err_path.open("wb") as err:
            t0 = time.perf_counter()
            maxrss_path = Path(tmp, "maxrss")
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(maxrss_path), *argv],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd or ROOT,
            )
            peak = [0, 0]  # PSS summed over the command's process tree, the command's maxrss
            stop = threading.Event()

            def sample() -> None:
                try:
                    ps = psutil.Process(proc.pid)
                except psutil.Error:
                    return
                while not stop.is_set():
                    # the launcher → the command → its workers, if any: with none, ru_maxrss
                    # says it all and sampling would only slow the command down
                    with contextlib.suppress(psutil.Error):
                        tree = ps.children(recursive=True)
                        if len(tree) > 1:
                            peak[0] = max(peak[0], sum(map(_pss, tree)))
                    stop.wait(sample_every or 0.01)

            sampler = threading.Thread(target=sample, daemon=True)
            if sample_every is not None:
                sampler.start()
            _, status, _usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            stop.set()
            if sample_every is not None:
                sampler.join()
            with contextlib.suppress(OSError, ValueError):
                peak[1] = int(maxrss_path.read_text())
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        return ChildRun(
            wall=wall,
            peak_rss=max(peak),
            returncode=proc.returncode,
            stdout=out_path.read_text("utf-8", errors="replace"),
            stderr=err_path.read_text("utf-8", errors="replace"),
        )


def python(*args: str) -> list[str]:
    """A command line running this interpreter (the project's venv)."""
    return [sys.executable, *args]


def alternate(
    rounds: int,
    project: Callable[[int], ChildRun],
    baseline: Callable[[int], ChildRun],
) -> tuple[list[ChildRun], list[ChildRun]]:
    """Run project and baseline side by side, swapping who goes first each round."""
    ours: list[ChildRun] = []
    theirs: list[ChildRun] = []
    for r in range(rounds):
        if r % 2 == 0:
            ours.append(project(r))
            theirs.append(baseline(r))
        else:
            theirs.append(baseline(r))
            ours.append(project(r))
    return ours, theirs


def median_wall(runs: Sequence[ChildRun]) -> float:
    return statistics.median(r.wall for r in runs)


def max_rss(runs: Sequence[ChildRun]) -> int:
    return max(r.peak_rss for r in runs)


# -- emulator ------------------------------------------------------------------------------------


class Recorder:
    """ASGI middleware: records (arrival time, path) of every HTTP request before the app runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.arrivals.append((time.monotonic(), scope["path"]))
        await self.app(scope, receive, send)

    def times(self, path_suffix: str = "") -> list[float]:
        with self._lock:
            return [t for t, p in self.arrivals if p.endswith(path_suffix)]


@dataclass(slots=True)
class Emulator:
    base_url: str
    secret: str
    store: Any
    recorder: Recorder
    group_ids: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {"WASMS_BASE_URL": self.base_url, "WASMS_SECRET": self.secret}


@contextlib.contextmanager
def emulator(
    *,
    contacts: Sequence[str] = (),
    groups: Sequence[str] = (),
    latency_ms: float = 0.0,
) -> Iterator[Emulator]:
    """A loopback emulator (uvicorn in a thread of this process, which is otherwise idle while
    a measured child runs), seeded with `contacts` (E.164) and `groups`."""
    from sync.emulator import Faults, Store, create_app, run_in_thread

    store = Store("PK")
    ids = {name: store.add_group(name) for name in groups}
    for i, phone in enumerate(contacts):
        store.add_contact(phone, f"Remote Contact {i:07d}")
    faults = Faults(latency_ms=latency_ms) if latency_ms else None
    recorder = Recorder(create_app(store, faults, seed=1))
    with run_in_thread(recorder) as base_url:
        yield Emulator(base_url, store.secret, store, recorder, ids)


# -- the machine and the table -------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = psutil.virtual_memory().total / 1024**3
    import pandas
    import phonenumbers

    return (
        f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM; Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; pandas {pandas.__version__}, "
        f"phonenumbers {phonenumbers.__version__}"
    )


def revision() -> str:
    """The commit measured, `+dirty` when the working tree has uncommitted changes."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return out.stdout.strip()


@dataclass(slots=True)
class Row:
    """One line of the results table."""

    case: str
    project: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: informational
    notes: str = ""

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: "-"}[self.met]


HEADER = ("case", "project", "baseline", "ratio", "target", "met?")


def text_table(rows: Sequence[Row]) -> str:
    cells = [HEADER, *[(r.case, r.project, r.baseline, r.ratio, r.target, r.verdict) for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  - {r.case}: {r.notes}" for r in rows if r.notes]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def markdown_table(rows: Sequence[Row], machine_line: str, when: str, argv: str) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Measured {when} at commit {revision()} with `{argv}` on: {machine_line}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for r in rows:
        cells = (r.case, r.project, r.baseline, r.ratio, r.target, r.verdict)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- **{r.case}**: {r.notes}" for r in rows if r.notes]
    if notes:
        out += ["", "Notes:", "", *notes]
    return "\n".join(out) + "\n"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def fmt_mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.0f} MiB"


def ratio(baseline: float, project: float) -> float:
    return baseline / project if project > 0 else float("inf")


# -- what a case gets ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    plan_rows: int  # target 1: cold plan
    nightly_rows: int  # targets 2 and 3: warm re-run and memory
    remote_contacts: int  # contacts on the emulator for the plan cases
    writes: int  # target 4: creates at 50 ms latency
    sequential_writes: int  # the sequential baseline's sample (scaled to `writes`)
    rate_writes: int  # target 4: creates under --rate
    rate: float
    listing: int  # target 5: contacts to list
    xlsx_small: int  # target 6: report records, small and large
    xlsx_large: int


FULL = Sizes(200_000, 1_000_000, 20_000, 1_000, 100, 1_000, 100, 100_000, 100_000, 1_000_000)
QUICK = Sizes(5_000, 20_000, 500, 100, 20, 200, 50, 10_000, 5_000, 50_000)
TOY = Sizes(300, 600, 50, 20, 5, 30, 20, 500, 200, 2_000)


@dataclass(slots=True)
class Context:
    sizes: Sizes
    workdir: Path  # scratch space for reports and outputs, removed afterwards
    rounds: int | None = None  # overrides every case's default
    quick: bool = False
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def rounds_for(self, default: int) -> int:
        if self.rounds is not None:
            return self.rounds
        return 1 if self.quick else default

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path
