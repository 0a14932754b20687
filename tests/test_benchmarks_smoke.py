"""The benchmark suite still runs: generators are deterministic and every case completes at toy
size. Nothing here times anything (`make bench` does the measuring)."""

from __future__ import annotations

import csv
from pathlib import Path

import phonenumbers
import pytest

from benchmarks import data, harness
from benchmarks.__main__ import CASES
from benchmarks.cases.writes import busiest_window


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")


def test_mixed_rows_are_deterministic_and_mixed() -> None:
    rows = list(data.mixed_rows(2000, seed=5))
    assert rows == list(data.mixed_rows(2000, seed=5))
    assert rows != list(data.mixed_rows(2000, seed=6))
    national = sum(1 for r in rows if r.phone[:1] in "0(" and not r.phone.startswith("00"))
    international = sum(1 for r in rows if r.phone.startswith(("+", "00")))
    assert 0.3 < national / len(rows) < 0.6
    assert 0.3 < international / len(rows) < 0.6
    valid = 0
    for r in rows:
        try:
            n = phonenumbers.parse(r.phone, data.REGION)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            valid += 1
            assert phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) == r.intended
    assert 0.85 < valid / len(rows) < 0.99  # some invalid rows, mostly valid ones


def test_generated_files_are_cached_and_consistent() -> None:
    path = data.mixed_csv(500)
    assert data.mixed_csv(500) == path
    with path.open(encoding="utf-8", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 500
    assert len(data.intended_phones(path)) == 500
    reference = data.reference_e164(path)
    assert reference <= set(data.intended_phones(path))
    remote = data.remote_seed(path, 40)
    assert len(remote) == len(set(remote)) == 40
    assert len(set(remote) & set(data.intended_phones(path))) == 20
    with data.writes_csv(30).open(encoding="utf-8", newline="") as fh:
        assert len({r["Phone"] for r in csv.DictReader(fh)}) == 30


def test_busiest_window() -> None:
    assert busiest_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert busiest_window([]) == 0


def test_run_child_measures_a_child() -> None:
    run = harness.run_child(harness.python("-c", "x = bytearray(50 * 1024 * 1024); print('ok')"))
    assert run.returncode == 0 and run.stdout.strip() == "ok"
    assert run.peak_rss > 50 * harness.MiB
    assert run.wall > 0


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_case_runs_at_toy_size(case: str, tmp_path: Path) -> None:
    ctx = harness.Context(harness.TOY, tmp_path, rounds=1, quick=True, log=lambda msg: None)
    rows = CASES[case](ctx)
    assert rows
    for row in rows:
        assert row.project and row.target
        assert "MISMATCH" not in row.notes
    table = harness.text_table(rows)
    assert rows[0].case in table
    assert rows[0].case in harness.markdown_table(rows, "machine", "now", "python -m benchmarks")
