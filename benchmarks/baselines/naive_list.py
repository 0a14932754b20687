"""Naive paging of get/contacts: pages 1, 2, 3, … of LIMIT rows until an empty page.

    python -m benchmarks.baselines.naive_list LIMIT

On the real server (offset = page * limit from page 2 on) this silently misses rows
limit..2*limit-1. Prints `<contacts listed> <requests> <seconds>`.
"""

import os
import sys
import time

import httpx

limit = int(sys.argv[1])
url = os.environ["WASMS_BASE_URL"] + "get/contacts"
secret = os.environ["WASMS_SECRET"]
t0 = time.perf_counter()
seen: dict[int, dict[str, object]] = {}
requests = 0
with httpx.Client(timeout=60) as client:
    page = 1
    while True:
        data = client.get(url, params={"secret": secret, "limit": limit, "page": page}).json()
        requests += 1
        if not data["data"]:
            break
        seen.update((c["id"], c) for c in data["data"])
        page += 1
print(len(seen), requests, time.perf_counter() - t0)
