"""Target 4: 1,000 creates at 50 ms latency, default settings; and `--rate R` from the server side.

The project runs the real `contact-sync apply` (whole process: start-up, listings, creates, the
verification listing, reports). The emulator adds 50 ms to every answer and records when each
request arrives, so the rate limit is checked where it matters: at the server.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks import data
from benchmarks.cases.plan import summary
from benchmarks.harness import (
    ChildRun,
    Context,
    Emulator,
    Row,
    emulator,
    fmt_s,
    python,
    run_child,
)

LATENCY_MS = 50.0
CONCURRENCY = 16  # the project's default
GROUP = "Bench Group"
_FLAGS = ("--region", data.REGION, "--group", GROUP, "-q", "--log-format", "json")


def project_apply(
    ctx: Context, emu: Emulator, source: Path, extra: list[str]
) -> tuple[ChildRun, Path]:
    report = ctx.scratch("apply") / "report"
    run = run_child(
        python("-m", "sync", "apply", str(source), *_FLAGS, "--report-dir", str(report), *extra),
        env={**emu.env(), "CONTACT_SYNC_HOME": str(ctx.scratch("home"))},
    ).check("contact-sync apply")
    return run, report


def _created(emu: Emulator) -> int:
    return len(emu.store.contacts())


def busiest_window(times: list[float], period: float = 1.0) -> int:
    """The most request arrivals inside any half-open window [t, t + period).

    Deliberately not `sync.remote.limits.busiest_window`: the limiter is not graded by its own
    code."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def writes(ctx: Context) -> list[Row]:
    n, sample = ctx.sizes.writes, ctx.sizes.sequential_writes
    source = data.writes_csv(n)
    floor = n * LATENCY_MS / 1000
    ours: list[ChildRun] = []
    apply_stage: list[float] = []
    sequential: list[float] = []  # scaled to n creates
    requests: list[int] = []
    for r in range(ctx.rounds_for(3)):
        with emulator(groups=[GROUP], latency_ms=LATENCY_MS) as emu:
            run, report = project_apply(ctx, emu, source, [])
            created = _created(emu)
            requests.append(len(emu.recorder.arrivals))
        if created != n:
            raise RuntimeError(f"apply created {created} contacts, expected {n}")
        ours.append(run)
        apply_stage.append(summary(report)["timings"].get("apply", 0.0))
        with emulator(groups=[GROUP], latency_ms=LATENCY_MS) as emu:
            seq = run_child(
                python(
                    "-m",
                    "benchmarks.baselines.sequential_writes",
                    str(source),
                    str(sample),
                    str(emu.group_ids[GROUP]),
                ),
                env=emu.env(),
            ).check("sequential writes")
        done, loop = seq.stdout.split()
        sequential.append(seq.wall - float(loop) + float(loop) * n / int(done))
        ctx.log(
            f"[writes] round {r + 1}: project {fmt_s(run.wall)} "
            f"(apply stage {fmt_s(apply_stage[-1])}); sequential {sample} creates "
            f"{fmt_s(float(loop))} → {fmt_s(sequential[-1])} scaled to {n}"
        )
    p = statistics.median(r.wall for r in ours)
    seq_median = statistics.median(sequential)
    return [
        Row(
            f"4a. {n:,} creates at {LATENCY_MS:g} ms latency (whole apply process)",
            fmt_s(p),
            f"{fmt_s(floor)} floor",
            f"{floor / p:.2f}x",
            ">= 6x faster than the floor",
            floor / p >= 6,
            f"median of {len(ours)} rounds, concurrency {CONCURRENCY} (default); apply stage "
            f"alone {fmt_s(statistics.median(apply_stage))}; {statistics.median(requests):.0f} "
            f"requests incl. listings and verification. Real sequential baseline: {sample} "
            f"creates one after another, scaled to {n:,}: {fmt_s(seq_median)} "
            f"({seq_median / p:.2f}x slower than the project)",
        )
    ]


def rate(ctx: Context) -> list[Row]:
    n, limit = ctx.sizes.rate_writes, ctx.sizes.rate
    source = data.writes_csv(n)
    expected = min(limit, CONCURRENCY / (LATENCY_MS / 1000))
    with emulator(groups=[GROUP], latency_ms=LATENCY_MS) as emu:
        run, _ = project_apply(ctx, emu, source, ["--rate", f"{limit:g}"])
        created = _created(emu)
        every = emu.recorder.times()
        creates = emu.recorder.times("create/contact")
    if created != n:
        raise RuntimeError(f"apply --rate created {created} contacts, expected {n}")
    busiest = busiest_window(every)
    span = max(creates) - min(creates)
    throughput = (len(creates) - 1) / span if span > 0 else float("inf")
    off = abs(throughput - expected) / expected
    ctx.log(
        f"[rate] {n} creates with --rate {limit:g}: busiest second {busiest} requests, "
        f"{throughput:.1f} creates/s, process {fmt_s(run.wall)}"
    )
    return [
        Row(
            f"4b. --rate {limit:g}: busiest 1-s window (server side)",
            f"{busiest} requests",
            "-",
            "-",
            f"<= {limit:g} requests",
            busiest <= limit,
            f"all {len(every)} requests of the run (listings and verification included), "
            "arrival times recorded by an ASGI middleware in front of the emulator",
        ),
        Row(
            f"4c. --rate {limit:g}: create throughput",
            f"{throughput:.1f} req/s",
            "-",
            f"{throughput / expected:.2f}",
            f"within 10% of {expected:g}/s",
            off <= 0.10,
            f"min(R, concurrency / latency) = min({limit:g}, {CONCURRENCY}/{LATENCY_MS / 1000:g}"
            f" s) = {expected:g}/s; (creates - 1) / (last - first arrival) over {len(creates)} "
            "creates",
        ),
    ]
