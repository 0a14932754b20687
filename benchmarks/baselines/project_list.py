"""The project's listing: `WasmsClient.list_contacts()`, default settings.

    python -m benchmarks.baselines.project_list

Reads WASMS_BASE_URL and WASMS_SECRET; prints `<contacts listed> <requests> <seconds>`, the
seconds being the listing alone (start-up excluded).
"""

import asyncio
import os
import time

from sync.remote import ClientSettings, WasmsClient


async def main() -> None:
    settings = ClientSettings(
        base_url=os.environ["WASMS_BASE_URL"], secret=os.environ["WASMS_SECRET"]
    )
    async with WasmsClient(settings) as client:
        t0 = time.perf_counter()
        contacts = await client.list_contacts()
        took = time.perf_counter() - t0
        ids = {c.id for c in contacts}
        print(len(contacts), client.requests_sent, took, len(ids))


asyncio.run(main())
