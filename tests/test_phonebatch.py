"""The column-wise fast path (`sync.phonebatch`) against the reference, cell by cell.

Every answer it gives must equal `normalize_phone`'s whole result (E.164, type, extension and
the reason's wording); where it gives None the scalar path answers. Groups are not held back by
size here (`MIN_GROUP` = 1), so every calling code and region of the corpora is covered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata
from test_normalize import REGIONS, corpus, wide_corpus

from sync import phonebatch
from sync.phonebatch import normalize_column
from sync.phonecache import normalize_values
from sync.phones import normalize_fast, normalize_phone


@pytest.fixture(autouse=True)
def every_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phonebatch, "MIN_GROUP", 1)


def _check(pairs: Iterable[tuple[str, str | None]]) -> tuple[int, int]:
    """Cells and answered cells; fails on the first answer that differs from the reference."""
    by_region: dict[str | None, set[str]] = defaultdict(set)
    for raw, region in pairs:
        by_region[region].add(raw)
    cells = answered = 0
    for region, raws in by_region.items():
        ordered = sorted(raws)
        for raw, got in zip(ordered, normalize_column(ordered, region), strict=True):
            cells += 1
            if got is not None:
                answered += 1
                assert got == normalize_phone(raw, region), (raw, region)
    return cells, answered


def test_agrees_with_the_reference_on_the_corpus() -> None:
    cells, answered = _check(corpus(40_000))
    assert answered > cells // 2  # it answers most cells, not a convenient few


def test_agrees_with_the_reference_on_wide_shapes() -> None:
    """Country codes without "+", trunk prefixes, wrong regions, noise of every length."""
    cells, answered = _check(wide_corpus(60_000))
    assert answered > cells // 2


@pytest.mark.parametrize(
    ("raw", "region", "answered"),
    [
        ("0300-1234567", "PK", True),
        ("(0300) 123 4567", "PK", True),
        ("923001234567", "PK", True),
        ("0044 7911 123456", "PK", True),  # a leading 00 is "+"
        ("(0044) 7911 123456", "PK", True),
        ("+1 (202) 555-0143", None, True),
        ("+44 1481 123456", None, True),  # +44 shared with Guernsey: leading digits decide
        ("2024-01-31", "PK", False),  # a date: the scalar screen words it
        ("-923001234567", "PK", False),  # negative
        ("923001234567.0", "PK", True),  # Excel's float text loses its .0
        ("0300/1234567", "PK", True),
        ("0300.123.4567", "PK", True),
        ("0044.7911.123456", "PK", True),  # screen's own leading-00 rule
        ("(0044) 7911.123456", "PK", True),
        ("12.05.2023", "PK", False),  # a date, with dots
        ("-0300.1234567", "PK", False),  # negative, with a dot
        ("=0300", "PK", False),
        ("+54 9 11 2345 6789", None, False),  # AR: a transform rule, left to the scalar path
        ("011 15 2345 6789", "AR", False),
        ("", "PK", False),
    ],
)
def test_shapes_it_answers_and_leaves(raw: str, region: str | None, answered: bool) -> None:
    (got,) = normalize_column([raw], region)
    assert (got is not None) == answered
    if got is not None:
        assert got == normalize_phone(raw, region)


@settings(max_examples=200, deadline=None)
@given(
    raws=st.lists(st.text(alphabet="0123456789 +-()./", min_size=1, max_size=18), max_size=40),
    region=st.sampled_from([*REGIONS, None]),
)
def test_any_digits_and_punctuation(raws: list[str], region: str | None) -> None:
    for raw, got in zip(raws, normalize_column(raws, region), strict=True):
        if got is not None:
            assert got == normalize_phone(raw, region)


def test_chunks_keep_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phonebatch, "CHUNK", 7)
    raws = [raw for raw, _ in corpus(500, seed=5)]
    whole = [normalize_phone(raw, "GB") for raw in raws]
    got = normalize_column(raws, "GB")
    pairs = list(zip(got, whole, strict=True))
    assert [g for g, _ in pairs if g is not None] == [w for g, w in pairs if g is not None]
    assert sum(g is not None for g in got) > 100


def test_small_groups_go_to_the_scalar_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phonebatch, "MIN_GROUP", 64)
    assert normalize_column(["+44 7911 123456", "0300-1234567"], "PK") == [None, None]


def test_normalize_values_uses_both_paths_and_agrees() -> None:
    pairs = wide_corpus(5_000, seed=3)
    got = normalize_values(pairs)
    assert all(got[p] == normalize_phone(*p) for p in set(pairs))


def test_every_metadata_pattern_compiles_in_polars() -> None:
    """The patterns this path runs, for every region of the installed phonenumbers."""
    probe = pl.Series(["123"])
    attrs = ["general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost"]
    attrs += ["personal_number", "voip", "pager", "uan", "voicemail"]
    patterns = set()
    for cc, regions in pnu.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
            assert md is not None
            descs = [getattr(md, a) for a in attrs]
            patterns.update(d.national_number_pattern for d in descs if d is not None)
            patterns.update([md.national_prefix_for_parsing, md.leading_digits])
            patterns.add(md.international_prefix)
    patterns.discard(None)
    assert len(patterns) > 1_000
    for pattern in patterns:
        probe.str.contains(f"^(?:{pattern})$")  # raises if polars' engine refuses it


def test_a_pattern_polars_refuses_leaves_the_cells_to_the_scalar_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(phonebatch, "_viable", lambda plan, x: x.str.contains("(unclosed"))
    assert normalize_column(["+44 7911 123456", "0300-1234567"], "PK") == [None, None]
    raws = ["+44 7911 123456", "0300-1234567"]
    assert normalize_values([(r, "PK") for r in raws]) == {
        (r, "PK"): normalize_phone(r, "PK") for r in raws
    }


def test_a_pattern_refused_for_one_calling_code_leaves_only_its_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every calling code's answers come from one polars query; when it fails, each part is
    run alone, so only the cells of the part polars refuses (DE's here) take the scalar path."""
    real = phonebatch._viable

    def refused_for_de(plan: Any, x: pl.Expr) -> pl.Expr:
        return x.str.contains("(unclosed") if plan.cc == 49 else real(plan, x)

    monkeypatch.setattr(phonebatch, "_viable", refused_for_de)
    raws = ["+49 30 901820", "0300-1234567", "+1 212 555 0123", "+44 7911 123456"]
    got = normalize_column(raws, "PK")
    assert got[0] is None
    assert got[1:] == [normalize_fast(r, "PK") for r in raws[1:]]
    assert all(g is not None for g in got[1:])
