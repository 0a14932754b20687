"""sync.snapshot: a re-run over unchanged sources gets exactly what ingest would return, and
any change to the bytes, the mapping or the snapshot itself makes it read the sources again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sync import snapshot
from sync.errors import InputError
from sync.mapping import load_mapping
from sync.normalize import ingest
from tests.e2e import Remote, remote

__all__ = ["remote"]

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"

# duplicates (with winners), invalid rows (with their cells), groups, an extension, two sheets
CSV = """\
Name,Phone,Tags
Ayesha Siddiqui,0301-2345678,VIP Clients
Bilal Ahmed,0321 4567890 ext. 12,
Ayesha S.,+92 301 2345678,Staff Members
Sara Javed,call me after 5,
Müller,+49 1512 3456789,VIP Clients; Staff Members
"""


def _sources(tmp_path: Path) -> list[Path]:
    src = tmp_path / "crm.csv"
    src.write_text(CSV, encoding="utf-8")
    return [src, FIXTURES / "two_sheets.xlsx", SAMPLES / "europe_contacts.csv"]


def test_a_hit_returns_what_ingest_returns(tmp_path: Path) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    first, hit = snapshot.ingest_cached(paths, mapping, cache)
    assert not hit
    again, hit = snapshot.ingest_cached(paths, mapping, cache)
    assert hit
    assert again == first == ingest(paths, mapping)
    assert again.duplicates and again.invalid and any(c.duplicates for c in again.contacts)
    assert any(i.columns for i in again.invalid), "rejected.csv needs the original cells"
    (stored,) = cache.glob("ingest-*.marshal")
    assert stored.stat().st_mode & 0o077 == 0, "personal data: owner-only"


def test_changed_bytes_of_the_same_size_and_time_are_read_again(tmp_path: Path) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    snapshot.ingest_cached(paths, mapping, cache)
    st = paths[0].stat()
    paths[0].write_text(CSV.replace("Sara Javed", "Sara Javid"), encoding="utf-8")
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    result, hit = snapshot.ingest_cached(paths, mapping, cache)
    assert not hit
    assert "Sara Javid" in {i.name for i in result.invalid}


def test_the_same_bytes_with_a_new_time_still_hit(tmp_path: Path) -> None:
    """The sources' stats only decide whether the snapshot is decoded while their bytes are
    still being hashed; the hash decides whether it is used."""
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    first, _ = snapshot.ingest_cached(paths, mapping, cache)
    paths[0].write_text(CSV, encoding="utf-8")
    os.utime(paths[0], ns=(1, 1))
    again, hit = snapshot.ingest_cached(paths, mapping, cache)
    assert hit and again == first


def test_a_key_that_cannot_be_made_falls_back_to_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    snapshot.ingest_cached(paths, mapping, cache)

    def gone(*args: object) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(snapshot, "key", gone)
    result, hit = snapshot.ingest_cached(paths, mapping, cache)
    assert not hit and result == ingest(paths, mapping)


def test_another_mapping_or_region_misses(tmp_path: Path) -> None:
    paths, cache = _sources(tmp_path), tmp_path / "cache"
    pk, gb = load_mapping(region="PK"), load_mapping(region="GB")
    snapshot.ingest_cached(paths, pk, cache)
    result, hit = snapshot.ingest_cached(paths, gb, cache)
    assert not hit
    assert result == ingest(paths, gb)
    assert snapshot.ingest_cached(paths, pk, cache)[1], "each mapping keeps its own slot"


def test_edited_ingest_code_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    snapshot.ingest_cached(paths, mapping, cache)
    assert snapshot.ingest_cached(paths, mapping, cache)[1]
    monkeypatch.setattr(snapshot, "code_digest", lambda *modules: "edited")
    assert not snapshot.ingest_cached(paths, mapping, cache)[1]


def test_code_digest_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.codehash import code_digest

    module = tmp_path / "rules_under_test.py"
    module.write_text("RULE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest.__wrapped__("rules_under_test")
    module.write_text("RULE = 2\n")
    assert code_digest.__wrapped__("rules_under_test") != before
    assert code_digest("sync.phones") == code_digest("sync.phones")


@pytest.mark.parametrize("damage", [b"", b"garbage", None])
def test_a_damaged_snapshot_is_a_miss_then_rewritten(tmp_path: Path, damage: bytes | None) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    cache = tmp_path / "cache"
    expected, _ = snapshot.ingest_cached(paths, mapping, cache)
    (stored,) = cache.glob("ingest-*.marshal")
    data = stored.read_bytes()
    # None: the right key, then a body cut short
    stored.write_bytes(data[: len(data) // 2] if damage is None else damage)
    assert snapshot.ingest_cached(paths, mapping, cache) == (expected, False)
    assert snapshot.ingest_cached(paths, mapping, cache) == (expected, True)


def test_only_the_most_recently_used_snapshots_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "KEEP", 2)
    mapping, cache = load_mapping(region="PK"), tmp_path / "cache"
    files = []
    for night in range(3):  # a new file name every night
        src = tmp_path / f"export-{night}.csv"
        src.write_text(CSV, encoding="utf-8")
        files.append(src)
    slots = [snapshot.slot(cache, [f], mapping) for f in files]
    snapshot.ingest_cached([files[0]], mapping, cache)
    os.utime(slots[0], (100, 100))  # long ago
    snapshot.ingest_cached([files[1]], mapping, cache)
    os.utime(slots[1], (200, 200))  # less long ago
    assert snapshot.ingest_cached([files[0]], mapping, cache)[1], "a hit makes it recent"
    snapshot.ingest_cached([files[2]], mapping, cache)  # a third slot: one must go
    assert sorted(cache.glob("ingest-*.marshal")) == sorted([slots[0], slots[2]])


def test_a_missing_source_still_gets_ingest_s_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv"):
        snapshot.ingest_cached([tmp_path / "nope.csv"], load_mapping(region="PK"), tmp_path)


def test_an_unwritable_cache_is_not_an_error(tmp_path: Path) -> None:
    paths, mapping = _sources(tmp_path), load_mapping(region="PK")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory would go")
    result, hit = snapshot.ingest_cached(paths, mapping, blocker)
    assert not hit and result == ingest(paths, mapping)


def test_the_nightly_rerun_reports_the_same_from_the_snapshot(remote: Remote) -> None:
    src = remote.csv("crm.csv", CSV)
    reports = []
    for name in ("first", "second"):
        out = remote.tmp / name
        res = remote.run(
            "plan", str(src), "--region", "PK", "--log-format", "json", "--report-dir", str(out)
        )
        assert res.exit_code == 0, res.stderr
        done = [json.loads(line) for line in res.stderr.splitlines() if "ingest.done" in line]
        assert [d["snapshot"] for d in done] == [name == "second"]
        reports.append(out)
    for name in ("report.csv", "rejected.csv"):
        assert (reports[0] / name).read_bytes() == (reports[1] / name).read_bytes()
