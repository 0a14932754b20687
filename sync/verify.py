"""A fresh listing → reconciliation. A 200 from delete proves nothing; only the listing shows
what is really there.

Every planned create or replace that succeeded must be present with the right name and groups;
every planned delete must be gone. A write whose answer was lost (so it counted as failed) but
which the listing shows fully done is credited as recovered. A run that sent no write has
nothing to verify, and the engine skips the listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sync.apply import ApplyResult, Outcome
from sync.models import RemoteContact
from sync.plan import remote_key


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    checked: int
    problems: dict[int, str] = field(default_factory=dict)  # index into outcomes → what is wrong
    skipped: str | None = None  # why no listing was needed (nothing was written)


def _create_problem(out: Outcome, found: RemoteContact | None) -> str | None:
    if found is None:
        return "not found in the listing after apply"
    diffs = []
    if found.name != out.entry.name:
        diffs.append(f"name is {found.name!r}, expected {out.entry.name!r}")
    if set(found.groups) != set(out.group_ids):
        diffs.append(f"groups are {sorted(found.groups)}, expected {list(out.group_ids)}")
    return "; ".join(diffs) or None


def verify(result: ApplyResult, listing: Sequence[RemoteContact]) -> VerifyResult:
    by_phone = {remote_key(c.phone): c for c in listing}
    ids = {c.id for c in listing}
    report = VerifyResult(ok=True, checked=0)
    for i, out in enumerate(result.outcomes):
        action = out.entry.action
        if action == "delete":
            if out.status == "not_attempted":
                continue
            report.checked += 1
            gone = out.entry.remote_id not in ids
            if out.status == "failed" and gone:
                out.status, out.reason = (
                    "recovered",
                    "the answer was lost; the listing shows it gone",
                )
            elif out.status != "failed" and not gone:
                report.problems[i] = "still present in the listing after delete"
            continue
        if not out.group_ids:  # never attempted (a group could not be created)
            continue
        report.checked += 1
        found = by_phone.get(out.entry.phone)
        out.remote_id = found.id if found else None
        problem = _create_problem(out, found)
        if out.status == "failed" and problem is None:
            out.status, out.reason = "recovered", "the answer was lost; the listing shows it stored"
        elif out.status in ("done", "recovered") and problem:
            report.problems[i] = problem
    report.ok = not report.problems and result.count("failed", "not_attempted") == 0
    for i, problem in report.problems.items():
        result.outcomes[i].reason = (
            "verify: " + problem + ". " + result.outcomes[i].reason
        ).strip()
    return report
