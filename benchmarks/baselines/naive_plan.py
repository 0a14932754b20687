"""The naive plan, as a user would write it with pandas and phonenumbers.

    python -m benchmarks.baselines.naive_plan SOURCE.csv OUT.csv [REGION]

Reads WASMS_BASE_URL and WASMS_SECRET; writes the rows to create (E.164 not on the remote).
"""

import os
import sys

import httpx
import pandas as pd
import phonenumbers

source, out = sys.argv[1], sys.argv[2]
region = sys.argv[3] if len(sys.argv) > 3 else "PK"


def to_e164(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


df = pd.read_csv(source, dtype=str)
df["e164"] = df["Phone"].fillna("").apply(to_e164)

answer = httpx.get(
    os.environ["WASMS_BASE_URL"] + "get/contacts",
    params={"secret": os.environ["WASMS_SECRET"], "limit": 10_000_000, "page": 1},
    timeout=60,
)
remote = {c["phone"] for c in answer.json()["data"]}

to_create = df[df["e164"].notna() & ~df["e164"].isin(remote)].drop_duplicates("e164")
to_create.to_csv(out, index=False)
print(len(df), len(to_create))
