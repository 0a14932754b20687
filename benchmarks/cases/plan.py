"""Targets 1-3 (and the report share of 6): `contact-sync plan` beside the naive pandas plan.

Both run as fresh processes against the same loopback emulator, seeded with remote contacts of
which half are in the file. The project runs the real CLI (`python -m sync plan FILE --region PK`),
so start-up, listing, planning and every report file are included.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.harness import (
    ChildRun,
    Context,
    Emulator,
    Row,
    alternate,
    emulator,
    fmt_mib,
    fmt_s,
    max_rss,
    median_wall,
    python,
    ratio,
    run_child,
)

GiB = 1024**3
# Report actions of source rows that carry a valid E.164 phone (remote-only rows are "(remote)").
_NOT_VALID = frozenset({"invalid"})
_FLAGS = ("--region", data.REGION, "-q", "--log-format", "json")


def project_plan(
    ctx: Context, emu: Emulator, source: Path, home: Path, name: str, *, observe: bool = False
) -> tuple[ChildRun, Path]:
    """Run `contact-sync plan` once; the run and its report directory (exit code checked).
    `observe`: sample the process tree's memory (a memory run; timed runs are not watched)."""
    report = ctx.scratch(name) / "report"
    run = run_child(
        python("-m", "sync", "plan", str(source), *_FLAGS, "--report-dir", str(report)),
        env={**emu.env(), "CONTACT_SYNC_HOME": str(home)},
        sample_every=0.01 if observe else None,
    ).check("contact-sync plan")
    return run, report


def naive_plan(ctx: Context, emu: Emulator, source: Path, name: str) -> tuple[ChildRun, Path]:
    out = ctx.scratch(name) / "to_create.csv"
    run = run_child(
        python("-m", "benchmarks.baselines.naive_plan", str(source), str(out), data.REGION),
        env=emu.env(),
    ).check("naive plan")
    return run, out


def report_phones(report: Path) -> tuple[set[str], set[str]]:
    """(valid E.164 of source rows, E.164 planned for creation) from a report.csv."""
    valid: set[str] = set()
    create: set[str] = set()
    with (report / "report.csv").open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["file"] == "(remote)" or rec["action"] in _NOT_VALID or not rec["phone"]:
                continue
            valid.add(rec["phone"])
            if rec["action"] == "create":
                create.add(rec["phone"])
    return valid, create


def naive_phones(out: Path) -> set[str]:
    with out.open(encoding="utf-8", newline="") as fh:
        return {rec["e164"] for rec in csv.DictReader(fh)}


def summary(report: Path) -> dict[str, Any]:
    """The `summary` object of report.json (read without loading every record)."""
    with (report / "report.json").open(encoding="utf-8") as fh:
        head = fh.read(64 * 1024)
    start = head.index("{", 1)
    doc, _ = json.JSONDecoder().raw_decode(head, start)
    result: dict[str, Any] = doc
    return result


def _diff(label: str, ours: set[str], theirs: set[str]) -> str:
    only_ours, only_theirs = sorted(ours - theirs), sorted(theirs - ours)
    return (
        f"{label}: project-only {len(only_ours)} {only_ours[:5]}, "
        f"phonenumbers-only {len(only_theirs)} {only_theirs[:5]}"
    )


def _stages(report: Path) -> str:
    """The run's own stage timings (report.json), for the log."""
    return json.dumps(summary(report).get("timings", {}))


_MEMORY = (
    "timed runs are not watched; memory comes from one more run whose process tree is sampled "
    "(the sampler stalls the run it watches: see benchmarks/harness.py)"
)


def report_share(reports: list[Path]) -> tuple[float, float]:
    """Median (report seconds, total seconds) from report.json timings."""
    timings = [summary(r)["timings"] for r in reports]
    return (
        statistics.median(t.get("report", 0.0) for t in timings),
        statistics.median(t.get("total", 0.0) for t in timings),
    )


def _share_row(case: str, reports: list[Path]) -> Row:
    rep, total = report_share(reports)
    share = rep / total if total else 0.0
    saves = [summary(r)["timings"].get("save_plan", 0.0) for r in reports]
    return Row(
        case,
        f"{fmt_s(rep)} of {fmt_s(total)} ({share:.0%})",
        "-",
        "-",
        "< 50% of the run",
        share < 0.5,
        "report.json's `timings.report`: report.json/csv/xlsx, rejected.csv, summary.md "
        "(report.json itself is written after that timer stops); writing plan.json, the plan's "
        f"own product, is timed apart (`save_plan`, median {fmt_s(statistics.median(saves))})",
    )


def cold_plan(ctx: Context) -> list[Row]:
    """Target 1: cold plan over mixed-format rows, identical E.164 to phonenumbers."""
    n = ctx.sizes.plan_rows
    ctx.log(f"[plan] generating {n:,} mixed rows (cached in benchmarks/.data)")
    source = data.mixed_csv(n)
    reference = data.reference_e164(source)
    remote = data.remote_seed(source, min(ctx.sizes.remote_contacts, n // 5))
    reports: list[Path] = []
    outs: list[Path] = []
    with emulator(contacts=remote) as emu:

        def ours(r: int) -> ChildRun:
            home = ctx.scratch("home")  # empty: a cold normalisation cache every round
            run, report = project_plan(ctx, emu, source, home, "plan")
            reports.append(report)
            ctx.log(f"[plan] round {r + 1}: project {fmt_s(run.wall)} {_stages(report)}")
            return run

        def theirs(r: int) -> ChildRun:
            run, out = naive_plan(ctx, emu, source, "naive")
            outs.append(out)
            ctx.log(f"[plan] round {r + 1}: naive {fmt_s(run.wall)}")
            return run

        mine, naive = alternate(ctx.rounds_for(3), ours, theirs)
        memory, _ = project_plan(ctx, emu, source, ctx.scratch("home"), "plan-mem", observe=True)
        ctx.log(f"[plan] memory run: {fmt_s(memory.wall)}, peak {fmt_mib(memory.peak_rss)}")
    valid, create = report_phones(reports[0])
    to_create = naive_phones(outs[0])
    problems = []
    if valid != reference:
        problems.append(_diff("valid E.164", valid, reference))
    if create != to_create:
        problems.append(_diff("to create", create, to_create))
    if problems:
        ctx.log(
            "\n" + "!" * 78 + "\nMISMATCH: the project's E.164 results differ from "
            "phonenumbers'\n  " + "\n  ".join(problems) + "\n" + "!" * 78
        )
    p, b = median_wall(mine), median_wall(naive)
    same = "E.164 identical" if not problems else "MISMATCH: " + "; ".join(problems)
    return [
        Row(
            f"1. cold plan, {n:,} mixed rows (whole process)",
            f"{fmt_s(p)}, {fmt_mib(max(memory.peak_rss, max_rss(mine)))}",
            f"{fmt_s(b)}, {fmt_mib(max_rss(naive))}",
            f"{ratio(b, p):.2f}x",
            ">= 2.5x faster, same E.164",
            ratio(b, p) >= 2.5 and not problems,
            f"median of {len(mine)} alternating rounds; {same} ({len(valid):,} valid phones, "
            f"{len(create):,} to create, {len(remote):,} remote contacts); {_MEMORY}",
        ),
        _share_row(f"6a. report share of the run, {n:,} rows (cold plan)", reports),
    ]


def nightly(ctx: Context) -> list[Row]:
    """Targets 2 and 3: an unchanged input re-planned with a warm cache; peak RSS."""
    n = ctx.sizes.nightly_rows
    ctx.log(f"[nightly] generating {n:,} mixed rows (cached in benchmarks/.data)")
    source = data.mixed_csv(n, seed=7)
    remote = data.remote_seed(source, min(ctx.sizes.remote_contacts, n // 5))
    home = ctx.scratch("nightly-home")  # one cache directory, kept across the runs
    reports: list[Path] = []
    outs: list[Path] = []
    with emulator(contacts=remote) as emu:
        ctx.log("[nightly] warm-up: the first (cold) run fills the normalisation cache")
        cold, cold_report = project_plan(ctx, emu, source, home, "nightly-cold", observe=True)
        ctx.log(
            f"[nightly] cold run {fmt_s(cold.wall)}, peak {fmt_mib(cold.peak_rss)} "
            f"{_stages(cold_report)}"
        )

        def ours(r: int) -> ChildRun:
            run, report = project_plan(ctx, emu, source, home, "nightly")
            reports.append(report)
            ctx.log(f"[nightly] round {r + 1}: project (warm) {fmt_s(run.wall)} {_stages(report)}")
            return run

        def theirs(r: int) -> ChildRun:
            run, out = naive_plan(ctx, emu, source, "nightly-naive")
            outs.append(out)
            ctx.log(f"[nightly] round {r + 1}: naive {fmt_s(run.wall)}")
            return run

        mine, naive = alternate(ctx.rounds_for(2), ours, theirs)
        memory, _ = project_plan(ctx, emu, source, home, "nightly-mem", observe=True)
        ctx.log(
            f"[nightly] memory run (warm): {fmt_s(memory.wall)}, peak {fmt_mib(memory.peak_rss)}"
        )
    warm_peak = max(memory.peak_rss, max_rss(mine))
    _, create = report_phones(reports[-1])
    to_create = naive_phones(outs[-1])
    same = create == to_create
    if not same:
        ctx.log(
            "\n"
            + "!" * 78
            + f"\nMISMATCH (nightly): {_diff('to create', create, to_create)}"
            + "\n"
            + "!" * 78
        )
    p, b = median_wall(mine), median_wall(naive)
    peak = max(cold.peak_rss, warm_peak)
    return [
        Row(
            f"2. nightly re-run, {n:,} unchanged rows (warm cache, ingest snapshot)",
            f"{fmt_s(p)}, {fmt_mib(warm_peak)}",
            f"{fmt_s(b)}, {fmt_mib(max_rss(naive))}",
            f"{ratio(b, p):.2f}x",
            ">= 8x faster",
            ratio(b, p) >= 8 and same,
            f"median of {len(mine)} alternating rounds after one cold warm-up run "
            f"({fmt_s(cold.wall)}, {ratio(b, cold.wall):.2f}x, memory sampled); to-create sets "
            + ("identical" if same else "MISMATCH")
            + f"; {_MEMORY}",
        ),
        Row(
            f"3. peak RSS, plan of {n:,} rows",
            f"{fmt_mib(peak)}",
            f"{fmt_mib(max_rss(naive))}",
            f"{peak / GiB:.2f} GiB",
            "<= 1 GiB",
            peak <= GiB,
            f"largest of the cold run ({fmt_mib(cold.peak_rss)}, process pool included) and the "
            f"warm memory run ({fmt_mib(memory.peak_rss)}); PSS summed over the process tree, "
            "sampled every 10 ms",
        ),
        _share_row(f"6a. report share of the run, {n:,} rows (warm re-run)", reports),
    ]
