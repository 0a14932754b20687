"""Target 6: report.xlsx streams. The project's writer, fed the same kind of lazily generated
records at two sizes 10x apart, must keep the same peak RSS (openpyxl write-only mode)."""

from __future__ import annotations

from benchmarks.harness import Context, MiB, Row, fmt_mib, fmt_s, python, run_child

ATTENTION_EVERY = 10  # one record in ten goes to an attention sheet (Invalid)
FLAT_MIB = 64  # allowed growth of peak RSS for 10x the records


def xlsx(ctx: Context) -> list[Row]:
    small, large = ctx.sizes.xlsx_small, ctx.sizes.xlsx_large
    runs = {}
    for n in (small, large):
        out = ctx.scratch("xlsx") / "report.xlsx"
        run = run_child(
            python("-m", "benchmarks.cases.xlsx_child", str(n), str(ATTENTION_EVERY), str(out))
        ).check("xlsx writer")
        runs[n] = (run, float(run.stdout.split()[1]), out.stat().st_size)
        ctx.log(f"[xlsx] {n:,} records: {fmt_s(runs[n][1])}, peak {fmt_mib(run.peak_rss)}")
    (a, ta, _), (b, tb, size) = runs[small], runs[large]
    growth = b.peak_rss - a.peak_rss
    return [
        Row(
            f"6b. report.xlsx peak RSS, {small:,} vs {large:,} records",
            f"{fmt_mib(a.peak_rss)} vs {fmt_mib(b.peak_rss)}",
            "-",
            f"{b.peak_rss / a.peak_rss:.2f}x",
            f"flat: grows < {FLAT_MIB} MiB",
            growth < FLAT_MIB * MiB,
            f"1 record in {ATTENTION_EVERY} lands in a sheet ({large // ATTENTION_EVERY:,} rows "
            f"at the large size, {size / MiB:.1f} MiB file); write time {fmt_s(ta)} vs "
            f"{fmt_s(tb)} ({(large // ATTENTION_EVERY) / tb:,.0f} sheet rows/s)",
        )
    ]
