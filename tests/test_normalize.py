"""Phone normalisation: the fast path against phonenumbers, properties, cache, pool, duplicates."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync import normalize, phonecache
from sync.mapping import load_mapping
from sync.normalize import ingest
from sync.phones import normalize_fast, normalize_phone, screen
from sync.plan import remote_key

REGIONS = ["PK", "GB", "US", "DE", "IT", "IN", "FR", "BR", "AR", "MX", "NG", "AU", "RU", "JP", "CA"]


def corpus(n: int, seed: int = 7) -> list[tuple[str, str | None]]:
    """Example numbers of many regions, mutated and written in the shapes spreadsheets hold."""
    rng = random.Random(seed)
    kinds = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    out = []
    for _ in range(n):
        region = rng.choice(REGIONS)
        ex = phonenumbers.example_number_for_type(region, rng.choice(kinds))
        assert ex is not None
        digits = list(phonenumbers.national_significant_number(ex))
        for _ in range(rng.randrange(4)):
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
        nsn = "".join(digits)
        if rng.random() < 0.15:
            nsn = nsn[:-1]
        cc = ex.country_code
        forms = [
            f"+{cc}{nsn}",
            f"+{cc} {nsn[:3]} {nsn[3:]}",
            f"00{cc}{nsn}",
            f"0{nsn}",
            nsn,
            f"({nsn[:3]}) {nsn[3:]}",
            f"{cc}{nsn}",
            f"+{cc} 0{nsn}",
            f"0{nsn[:3]}-{nsn[3:]}",
            f"{nsn}.0",
        ]
        out.append((rng.choice(forms), rng.choice([region, region, rng.choice(REGIONS), None])))
    return out


def test_fast_path_agrees_with_phonenumbers_on_a_large_corpus() -> None:
    pairs = corpus(40_000)
    expected = [normalize_phone(*p) for p in pairs]
    mismatches = [(p, e) for p, e in zip(pairs, expected, strict=True) if normalize_fast(*p) != e]
    assert mismatches == []
    assert sum(1 for e in expected if e[0]) > 10_000  # many valid numbers in there


WIDE_REGIONS = ["PK", "GB", "US", "DE", "IN", "AE", "IT", "AR", "BR", "MX", "FR", "CN", "RU", "NG"]
KINDS = [
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.VOIP,
]


def wide_corpus(n: int, seed: int = 11) -> list[tuple[str, str | None]]:
    """Shapes the fast path must get exactly right, over many regions.

    Country code without "+" (`923001234567` in PK), with a trunk prefix after it
    (`9203001234567`), national numbers with the region's own trunk prefix (`0`, `1`, `8`...),
    numbers of other regions read with the wrong default region, and random digit strings of every
    length (invalid: the reason must be worded as the reference words it).
    """
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    for _ in range(n):
        region = rng.choice(WIDE_REGIONS)
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        assert md is not None
        trunk = md.national_prefix or "0"
        cc = md.country_code
        ex = phonenumbers.example_number_for_type(region, rng.choice(KINDS))
        if ex is None:
            ex = phonenumbers.example_number(region)
        assert ex is not None
        digits = list(phonenumbers.national_significant_number(ex))
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
        nsn = "".join(digits)
        cut = rng.random()
        if cut < 0.1:
            nsn = nsn[:-1]
        elif cut < 0.18:
            nsn += str(rng.randrange(10))
        noise = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(1, 19)))
        forms = [
            f"{cc}{nsn}",
            f"{cc}{trunk}{nsn}",
            f"{cc} {nsn}",
            f"{trunk}{nsn}",
            f"{trunk} {nsn[:3]} {nsn[3:]}",
            nsn,
            f"+{cc}{nsn}",
            f"+{cc}{trunk}{nsn}",
            f"+{cc} ({trunk}) {nsn}",
            f"00{cc}{nsn}",
            noise,
            f"{cc}{noise}",
            f"+{cc}{noise}",
            f"{trunk}{noise}",
        ]
        hint = rng.choice([region, region, region, rng.choice(WIDE_REGIONS), None])
        out.append((rng.choice(forms), hint))
    return out


def test_fast_path_agrees_with_phonenumbers_on_wide_shapes() -> None:
    """Whole results (E.164, type, extension and reason text) equal the reference's."""
    pairs = wide_corpus(60_000)
    expected = [normalize_phone(*p) for p in pairs]
    mismatches = [(p, e) for p, e in zip(pairs, expected, strict=True) if normalize_fast(*p) != e]
    assert mismatches == []
    assert sum(1 for e in expected if e[0]) > 15_000
    assert sum(1 for e in expected if e[3].startswith(("too short for", "too long for"))) > 2_000


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("923001234567", "PK", "+923001234567"),  # country code without "+"
        ("92 300 1234567", "PK", "+923001234567"),
        ("9203001234567", "PK", "+923001234567"),  # ... and the trunk prefix after it
        ("4402079460958", "GB", "+442079460958"),
        ("442079460958", "GB", "+442079460958"),
        ("12015550123", "US", "+12015550123"),  # national prefix 1
        ("89123456789", "RU", "+79123456789"),  # national prefix 8
        ("011 15 2345 6789", "AR", "+5491123456789"),  # AR: trunk prefix with a transform rule
        ("+49 (0) 30 123456", None, "+4930123456"),
    ],
)
def test_country_code_and_trunk_prefix_shapes(raw: str, region: str | None, e164: str) -> None:
    assert normalize_phone(raw, region)[0] == e164
    assert normalize_fast(raw, region) == normalize_phone(raw, region)


def reference(raw: str, region: str | None) -> str | None:
    """phonenumbers alone, after the documented screen (00 → +, .0 dropped...)."""
    text, reason = screen(raw)
    if reason:
        return None
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


phone_text = st.text(alphabet="0123456789 +-()", min_size=1, max_size=18)


@settings(max_examples=400, deadline=None)
@given(raw=phone_text, region=st.sampled_from([*REGIONS, None]))
def test_agrees_with_phonenumbers(raw: str, region: str | None) -> None:
    assert (normalize_fast(raw, region)[0] or None) == reference(raw, region)


@settings(max_examples=300, deadline=None)
@given(region=st.sampled_from(REGIONS), index=st.integers(0, 39_999))
def test_idempotent(region: str, index: int) -> None:
    raw, hint = corpus(1, seed=index)[0]
    e164 = normalize_fast(raw, hint)[0]
    if e164:
        assert normalize_fast(e164, region)[0] == e164
        assert normalize_fast(e164, None)[0] == e164


@pytest.mark.parametrize(
    ("raw", "region", "fragment"),
    [
        ("", "PK", "missing phone"),
        ("03001234567", None, "no country"),
        ("0301 234567", "PK", "invalid for region PK"),
        ("12", "PK", "too short"),
        ("+999 1234567", None, "unknown country code"),
        ("123456789012345678901", "PK", "too long"),
        ("hello", "PK", "not a phone number"),
        ("9.23001112233E+11", "PK", "scientific notation"),
        ("2023-03-01", "PK", "date"),
        ("-3001234567", "PK", "negative"),
        ("=A1+1", "PK", "formula"),
        ("line\nbreak 1", "PK", "several lines"),
    ],
)
def test_reasons(raw: str, region: str | None, fragment: str) -> None:
    e164, _, _, reason = normalize_fast(raw, region)
    assert not e164
    assert fragment in reason


def test_extension_and_type() -> None:
    assert normalize_fast("0301 2345678 ext. 12", "PK") == ("+923012345678", "mobile", "12", "")
    assert normalize_fast("+44 20 7946 0958", None)[1] == "fixed_line"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def test_duplicates_across_files_and_name_policy(tmp_path: Path) -> None:
    a = write(tmp_path, "a.csv", "Name,Phone,Groups\nAli Khan,0300 1234567,VIP\n")
    b = write(tmp_path, "b.csv", "Name,Phone,Groups\nAli Khan Sahib,+923001234567,Lahore; VIP\n")
    m = load_mapping(region="PK", groups=["Imported"])
    first = ingest([a, b], m)
    assert first.rows_read == len(first.contacts) + len(first.issues) == 2
    (c,) = first.contacts
    assert (c.name, c.groups) == ("Ali Khan", ("VIP", "Imported", "Lahore"))
    (dup,) = first.issues
    assert dup.kind == "duplicate"
    assert dup.winner == c.origin
    assert str(c.origin) in dup.reason
    assert ingest([a, b], replace(m, name_policy="last")).contacts[0].name == "Ali Khan Sahib"
    assert ingest([a, b], replace(m, name_policy="longest")).contacts[0].name == "Ali Khan Sahib"


def test_require_mobile_and_short_name_rejection(tmp_path: Path) -> None:
    src = write(tmp_path, "a.csv", "Name,Phone\nImran Khan,042 35761234\nAl,0300 1234567\n")
    m = replace(load_mapping(region="PK"), require_mobile=True, name_fallback=())
    result = ingest([src], m)
    reasons = {i.origin.row: i.reason for i in result.issues}
    assert "not a mobile number (fixed line" in reasons[2]
    assert "too short (under 4 bytes)" in reasons[3]


def test_per_row_country(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "a.csv",
        "Name,Phone,Country\nZoe Muller,0151 23456789,DE\nJean Dupont,06 12 34 56 78,France\n"
        "Anna Svensson,070-123 45 67,+46\nNobody Here,070-123 45 67,Narnia\n",
    )
    result = ingest([src], load_mapping(region="PK"))
    assert [c.phone for c in result.contacts] == ["+4915123456789", "+33612345678", "+46701234567"]
    assert "unknown country 'Narnia'" in result.issues[0].reason


def test_cache_is_reused_and_invalidated_by_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path, "a.csv", "Name,Phone\nAli Khan,0300 1234567\nBob Stone,junk\n")
    cache = tmp_path / "cache"
    ingest([src], load_mapping(region="PK"), cache_dir=cache)
    stored = phonecache.load_cache(cache)
    assert stored["PK\x1f0300 1234567"][0] == "+923001234567"

    calls: list[int] = []
    real = phonecache.normalize_many
    monkeypatch.setattr(
        phonecache, "normalize_many", lambda todo: calls.append(len(todo)) or real(todo)
    )
    again = ingest([src], load_mapping(region="PK"), cache_dir=cache)
    assert calls == [] and len(again.contacts) == 1

    monkeypatch.setattr(phonecache.phonenumbers, "__version__", "0.0.0-test")
    ingest([src], load_mapping(region="PK"), cache_dir=cache)
    assert calls == [2]
    assert [p.name for p in cache.glob("phones-*")] == [phonecache.cache_file(cache).name]

    # a change to our rules' source is a new cache too (no schema number to forget)
    monkeypatch.setattr(phonecache, "code_digest", lambda *modules: "edited-rules")
    ingest([src], load_mapping(region="PK"), cache_dir=cache)
    assert calls == [2, 2]
    assert [p.name for p in cache.glob("phones-*")] == [phonecache.cache_file(cache).name]
    assert "edited-rules" in phonecache.cache_file(cache).name


def test_damaged_cache_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    phonecache.cache_file(cache).write_bytes(b"not marshal")
    src = write(tmp_path, "a.csv", "Name,Phone\nAli Khan,0300 1234567\n")
    assert len(ingest([src], load_mapping(region="PK"), cache_dir=cache).contacts) == 1


def _count_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ProcessPoolExecutor phonecache starts, recorded by its worker count."""
    started: list[int] = []
    real = phonecache.ProcessPoolExecutor

    def pool(max_workers: int, **kwargs: Any) -> Any:
        started.append(max_workers)
        return real(max_workers, **kwargs)

    monkeypatch.setattr(phonecache, "ProcessPoolExecutor", pool)
    return started


def test_process_pool_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = corpus(3_000, seed=3)
    monkeypatch.setattr(phonecache, "POOL_THRESHOLD", 100)
    started = _count_pools(monkeypatch)
    pooled = phonecache.normalize_values(pairs, workers=2)
    assert all(pooled[p] == normalize_fast(*p) for p in pairs)
    assert started == [1]  # the cells phonebatch left were many enough for the pool


def test_no_pool_is_forked_beside_another_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run reads on a thread beside its listing: its process is not forked (a lock another
    thread held could be copied taken)."""
    pairs = corpus(2_000, seed=5)
    monkeypatch.setattr(phonecache, "POOL_THRESHOLD", 10)
    started = _count_pools(monkeypatch)
    other = threading.Event()
    thread = threading.Thread(target=other.wait)
    thread.start()
    try:
        assert phonecache._run(pairs, 2) == [normalize_fast(*p) for p in pairs]
    finally:
        other.set()
        thread.join()
    assert started == []


def test_cache_over_regions_partial_hits_and_unstorable_values(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = {"PK": dict.fromkeys(["0300 1234567", "bad\x1fcell"]), "GB": {"020 7946 0958": None}}
    got = phonecache.normalize_by_region(first, cache_dir=cache, workers=1)
    assert got["PK"]["0300 1234567"][0] == "+923001234567"
    assert got["PK"]["bad\x1fcell"] == normalize_fast("bad\x1fcell", "PK")
    assert got["GB"]["020 7946 0958"][0] == "+442079460958"
    stored = phonecache.load_cache(cache)
    assert set(stored) == {"PK\x1f0300 1234567", "GB\x1f020 7946 0958"}
    second = {"PK": dict.fromkeys(["0300 1234567", "0301 2345678"]), None: {"+4915123456789": None}}
    again = phonecache.normalize_by_region(second, cache_dir=cache, workers=1)
    assert again["PK"]["0301 2345678"][0] == "+923012345678"
    assert again[None]["+4915123456789"][0] == "+4915123456789"
    assert len(phonecache.load_cache(cache)) == 4


def test_pool_with_the_main_process_taking_a_share(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = corpus(2_000, seed=5)
    monkeypatch.setattr(phonecache, "POOL_THRESHOLD", 10)
    started = _count_pools(monkeypatch)
    for workers in (2, 3):
        assert phonecache._run(pairs, workers) == [normalize_fast(*p) for p in pairs]
    assert started == [1, 2]


class _Held:
    """Stands for a caller's working data (ingest's lists of a million values)."""


def _held_after(call: Callable[[], object]) -> weakref.ref[_Held]:
    held = _Held()
    call()
    return weakref.ref(held)


@pytest.mark.parametrize(
    "call",
    [
        lambda: normalize_phone("+0000000", None),  # phonenumbers catches, then raises again
        lambda: normalize_phone("+00 123", "PK"),
        lambda: remote_key("+00 123"),
        lambda: remote_key("not a phone", "PK"),
    ],
)
def test_an_unparsable_cell_keeps_no_caller_alive(call: Callable[[], object]) -> None:
    """Runs pause the cyclic collector: a phonenumbers error caught on the way must not keep its
    frames, and through them every caller's locals, alive (a cold 1M-row plan: +450 MB)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        assert _held_after(call)() is None
    finally:
        if enabled:
            gc.enable()


def _odd_by_hand(names: list[str], lo: int, hi: int) -> list[int]:
    return [
        k
        for k, name in enumerate(names)
        if not lo <= len(name) <= hi or name.startswith(" ") or name.endswith(" ") or "  " in name
    ]


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.text(alphabet=" aéZ\u00a0\u4e2d\U0001f600\t", max_size=9), max_size=30),
    lo=st.integers(0, 5),
    hi=st.integers(3, 8),
)
def test_odd_names_in_polars_are_the_ones_python_finds(names: list[str], lo: int, hi: int) -> None:
    """Lengths in characters (not bytes: é, 中 and 😀 are one each), spaces at the ends or doubled
    (a no-break space or a tab is not a space here)."""
    assert normalize._odd_names(names, lo, hi) == _odd_by_hand(names, lo, hi)


def test_a_lone_surrogate_takes_the_python_paths() -> None:
    """Text our readers make is never such, but a library caller's strings may be: polars
    cannot hold them, so those cells and names go the scalar way, with the same answers."""
    names = ["ok name", " \udc80 x", "a\udc80  b"]
    assert normalize._odd_names(names, 4, 50) == _odd_by_hand(names, 4, 50)
    pairs = [("0300\udc801234567", "PK"), ("+923001234567", "PK")]
    got = phonecache.normalize_values(pairs)
    assert got == {p: normalize_phone(*p) for p in pairs}


def test_the_cache_file_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """Values are normalised and stored in the file's order, never a set's (which follows the
    string hash seed): the same input gives the same cache bytes in any process."""
    src = tmp_path / "in.csv"
    rows = [f"Name {k},{raw}" for k, (raw, _) in enumerate(corpus(3_000, seed=9))]
    src.write_text("Name,Phone\n" + "\n".join(rows) + "\n", encoding="utf-8")
    script = (
        "import sys; from pathlib import Path; from sync.mapping import load_mapping; "
        "from sync.normalize import ingest; "
        "ingest([Path(sys.argv[1])], load_mapping(None, region='PK'), cache_dir=Path(sys.argv[2]))"
    )
    files = []
    for seed in ("1", "2"):
        cache = tmp_path / f"cache-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(src), str(cache)], env=env, check=True)
        (made,) = cache.glob("phones-*.marshal")
        files.append(made.read_bytes())
    assert files[0] == files[1]
