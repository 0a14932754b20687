"""`make demo` works: every outcome in one run, and the second apply sends no write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_and_shows_every_outcome() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sync.cli.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "writes sent by the second apply: 0" in proc.stdout
    doc = json.loads((ROOT / "demo-output" / "2-apply" / "report.json").read_text("utf-8"))
    actions = {r["action"] for r in doc["records"]}
    assert {
        "create",
        "delete",
        "unchanged",
        "drift",
        "invalid",
        "duplicate",
        "skip_optout",
        "keep",
    } <= actions
    assert doc["summary"]["verified"] is True
