"""`python -m benchmarks`: every target of issue 6, the project beside its baseline.

    python -m benchmarks                 full sizes; writes benchmarks/results.md
    python -m benchmarks --quick         small sizes, one round (a smoke run; no results.md)
    python -m benchmarks --only plan,writes --rounds 5

Cases: plan (target 1, 6a), nightly (2, 3, 6a), writes (4), rate (4), listing (5), xlsx (6b).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import harness
from benchmarks.cases import listing, plan, reports, writes
from benchmarks.harness import Context, Row

CASES: dict[str, Callable[[Context], list[Row]]] = {
    "plan": plan.cold_plan,
    "nightly": plan.nightly,
    "writes": writes.writes,
    "rate": writes.rate,
    "listing": listing.listing,
    "xlsx": reports.xlsx,
}
_DESCRIPTION = "Every target of issue 6: the project beside its baseline, side by side."
RESULTS = Path(__file__).resolve().parent / "results.md"


def run_cases(ctx: Context, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        t0 = time.perf_counter()
        ctx.log(f"== {name}")
        try:
            rows.extend(CASES[name](ctx))
        except Exception as exc:  # one broken case must not hide the others' numbers
            ctx.log(traceback.format_exc())
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rows.append(Row(name, "FAILED", "-", "-", "-", False, f"{type(exc).__name__}: {first}"))
        ctx.log(f"== {name} took {time.perf_counter() - t0:.0f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument(
        "--only", action="append", default=[], metavar="CASE", help=f"one of {', '.join(CASES)}"
    )
    parser.add_argument("--rounds", type=int, help="rounds per case (default: 3, 1M cases 2)")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(CASES)
    if unknown := [n for n in names if n not in CASES]:
        parser.error(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASES)}")
    machine = harness.machine()
    print(f"machine: {machine}; commit {harness.revision()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="contact-sync-bench-"))
    try:
        ctx = Context(
            harness.QUICK if args.quick else harness.FULL, workdir, args.rounds, args.quick
        )
        t0 = time.perf_counter()
        rows = run_cases(ctx, names)
        took = time.perf_counter() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(harness.text_table(rows))
    missed = [r.case for r in rows if r.met is False]
    print(f"\n{len(rows) - len(missed)}/{len(rows)} met; total {took:.0f} s. machine: {machine}")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = harness.markdown_table(rows, machine, when, command.strip())
    full = not args.quick and not args.only and args.rounds is None
    target = RESULTS if full else harness.ROOT / "benchmarks" / ".data" / "results-partial.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown, encoding="utf-8")
    print(f"markdown table: {target.relative_to(harness.ROOT)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
