"""Write report.xlsx for N synthetic records with the project's writer, in this process.

    python -m benchmarks.cases.xlsx_child N ATTENTION_EVERY OUT.xlsx

Every ATTENTION_EVERY-th record is an invalid row (written to the "Invalid" sheet); the others
are planned creates (in no attention sheet). Records are generated lazily, as the engine does.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sync.report import Record, write_xlsx


def main() -> None:
    n, every, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])

    def records() -> Iterator[Record]:
        for i in range(n):
            bad = i % every == 0
            yield Record(
                file="contacts.csv",
                sheet="",
                row=i + 2,
                raw_phone=f"0301-{i:07d}" if not bad else f"03-{i}",
                phone="" if bad else f"+92301{i:07d}",
                name=f"Contact {i:07d}",
                groups="Customers",
                action="invalid" if bad else "create",
                outcome="skipped" if bad else "planned",
                reason="not a valid number" if bad else "",
                remote_id=None,
                attempts=0,
            )

    # the writer takes the records (older versions: a function returning a fresh iterator)
    wanted = list(inspect.signature(write_xlsx).parameters.values())[2].annotation
    source: Any = records if "Callable" in str(wanted) else records()
    t0 = time.perf_counter()
    write_xlsx(out, [("rows read", n)], source)
    print(n, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
