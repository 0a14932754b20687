"""Target 5: list 100k remote contacts completely, despite the server's pagination off-by-one.

The emulator pages like the real server (`offset = page * limit` from page 2 on). The project's
`WasmsClient.list_contacts()` runs in a fresh process that prints what it listed and how long the
listing alone took; the baseline pages naively (1, 2, 3, … of 1,000) and silently misses a page.
"""

from __future__ import annotations

import statistics

from benchmarks.harness import ChildRun, Context, Row, alternate, emulator, fmt_s, python, run_child

NAIVE_LIMIT = 1000


def listing(ctx: Context) -> list[Row]:
    n = ctx.sizes.listing
    phones = [f"+92300{i:07d}" for i in range(n)]
    listed: list[int] = []
    distinct: list[int] = []
    seconds: list[float] = []
    requests: list[int] = []
    naive_listed: list[int] = []
    naive_requests: list[int] = []
    with emulator(contacts=phones) as emu:

        def ours(r: int) -> ChildRun:
            before = len(emu.recorder.arrivals)
            run = run_child(python("-m", "benchmarks.baselines.project_list"), env=emu.env()).check(
                "project listing"
            )
            count, _sent, took, ids = run.stdout.split()
            listed.append(int(count))
            distinct.append(int(ids))
            seconds.append(float(took))
            requests.append(len(emu.recorder.arrivals) - before)
            ctx.log(
                f"[listing] round {r + 1}: project listed {count} in {float(took):.2f} s "
                f"({requests[-1]} requests), process {fmt_s(run.wall)}"
            )
            return run

        def theirs(r: int) -> ChildRun:
            run = run_child(
                python("-m", "benchmarks.baselines.naive_list", str(NAIVE_LIMIT)), env=emu.env()
            ).check("naive listing")
            count, sent, _took = run.stdout.split()
            naive_listed.append(int(count))
            naive_requests.append(int(sent))
            return run

        mine, naive = alternate(ctx.rounds_for(3), ours, theirs)
    took = statistics.median(seconds)
    complete = all(c == n for c in listed) and all(d == n for d in distinct)
    few = max(requests) <= max(3, n // 500)
    proc = statistics.median(r.wall for r in mine)
    naive_wall = statistics.median(r.wall for r in naive)
    return [
        Row(
            f"5. list {n:,} remote contacts",
            f"{took:.2f} s, {max(requests)} req, {min(listed):,} listed",
            f"{fmt_s(naive_wall)}, {max(naive_requests)} req, {min(naive_listed):,} listed",
            f"{naive_wall / proc:.2f}x",
            f"< 2 s, all {n:,}, <= {max(3, n // 500)} req",
            took < 2 and complete and few,
            f"project: the listing alone (median of {len(mine)}), whole process "
            f"{fmt_s(proc)}; baseline: naive paging by {NAIVE_LIMIT} (whole process), which "
            f"misses {n - min(naive_listed):,} contacts on this server",
        )
    ]
