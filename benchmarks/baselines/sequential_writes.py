"""Sequential writes: one create/contact after another, as a user's loop would send them.

    python -m benchmarks.baselines.sequential_writes SOURCE.csv COUNT GROUP_ID

Reads WASMS_BASE_URL and WASMS_SECRET; prints `<creates> <seconds spent in the loop>`.
"""

import csv
import os
import sys
import time

import httpx

source, count, group = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(source, encoding="utf-8", newline="") as fh:  # noqa: PTH123 - as a user writes it
    rows = list(csv.DictReader(fh))[:count]

url = os.environ["WASMS_BASE_URL"] + "create/contact"
secret = os.environ["WASMS_SECRET"]
t0 = time.perf_counter()
with httpx.Client(timeout=30) as client:
    for row in rows:
        answer = client.post(
            url,
            data={"secret": secret, "phone": row["Phone"], "name": row["Name"], "groups": group},
        )
        if answer.json()["status"] != 200:
            sys.exit(f"create failed: {answer.text}")
print(len(rows), time.perf_counter() - t0)
