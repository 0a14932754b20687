"""The phone fast path over a whole column at once: polars expressions instead of a call per cell.

    normalize_column(raws, region) -> [PhoneResult | None, ...]

`phones.normalize_fast` spends ~4 µs of Python per cell; a cold 200k-row file holds ~190k
distinct cells. This module answers the same cells column-wise: it follows `normalize_fast`'s
first branch step by step (the same screen for "plain digits", the same leading `00`, country
code, national-prefix strip, length test and type matchers, built from `phones`' own compiled
plans of phonenumbers' metadata), but each step is one polars expression over every cell of a
calling code or region, and the regular expressions run in polars' Rust engine, which accepts
every pattern of the metadata (they are written for RE2 and Java).

A cell comes back None wherever `normalize_fast` would leave its first branch (spreadsheet
artefacts, IDD prefixes, unknown calling codes, lengths outside 4-17) and for calling codes or
regions it does not cover (a national-prefix transform rule, as AR's or BR's; or fewer than
`MIN_GROUP` cells, which would not pay for compiling their patterns): the caller asks
`normalize_fast` for those. `tests/test_phonebatch.py` holds every answer to the reference.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache, partial
from itertools import repeat
from typing import Final, TypeVar

import polars as pl
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata

from sync.phones import (
    _BAD_LENGTH,
    _DATE,
    _KEEP_UNSTRIPPED,
    _LENGTH_WORDS,
    _LOCAL_ONLY,
    _ORDERED_TYPES,
    _POSSIBLE,
    _PUNCT,
    _TOO_LONG,
    _TOO_SHORT,
    TYPE_NAMES,
    PhoneResult,
    _country,
    _main_plan,
    _Plan,
    _region_plan,
    _where,
)

CHUNK = 1 << 17  # cells per polars frame
MIN_GROUP = 64  # cells of one calling code or region below which the scalar path is cheaper

# the characters `phones._PUNCT` deletes, as one class ("-" last: a literal there)
_PUNCT_CHARS: Final = "".join(sorted(chr(c) for c in _PUNCT))
_PUNCT_CLASS: Final = "[" + _PUNCT_CHARS.replace("-", "") + "-]"
_SPACES: Final = "".join(c for c in _PUNCT_CHARS if c.isspace())  # what str.strip() removes here
# the calling codes as one pattern: no code is a prefix of another (E.164), so the code a number
# starts with is the one the scalar loop (1, 2, then 3 digits) finds
_CALLING_CODE: Final = "^(" + "|".join(sorted(map(str, pnu.COUNTRY_CODE_TO_REGION_CODE))) + ")"

_DIGITS: Final = r"^\+?[0-9]+$"  # `phones._DIGITS`, whole

_n = pl.col("n")
_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


def _full(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _in(expr: pl.Expr, values: Sequence[int] | frozenset[int]) -> pl.Expr:
    return expr.is_in(sorted(values)) if values else pl.lit(False)


# -- _Plan's steps as expressions ------------------------------------------------------------------


def _viable(plan: _Plan, x: pl.Expr) -> pl.Expr:
    """`_Plan.viable`: the general description's pattern matches the whole number."""
    if plan.general is None:
        return pl.lit(False)
    return x.str.contains(_full(plan.general.pattern))


def _length(plan: _Plan, x: pl.Expr) -> pl.Expr:
    """`_Plan.length`: the ValidationResult of the number's length."""
    n = x.str.len_bytes().cast(pl.Int32)
    lo = plan.lo
    assert lo is not None
    return (
        pl.when(_in(n, plan.local))
        .then(pl.lit(_LOCAL_ONLY))
        .when(n == lo)
        .then(pl.lit(_POSSIBLE))
        .when(n < lo)
        .then(pl.lit(_TOO_SHORT))
        .when(n > plan.hi)
        .then(pl.lit(_TOO_LONG))
        .when(_in(n, plan.lengths))
        .then(pl.lit(_POSSIBLE))
        .otherwise(pl.lit(_BAD_LENGTH))
    )


def _strip(plan: _Plan, frame: pl.LazyFrame, x: str, out: str) -> pl.LazyFrame:
    """`_Plan.strip` of column `x` into column `out` (plans without a transform rule)."""
    if plan.npfp is None:
        return frame.with_columns(pl.col(x).alias(out))
    col = pl.col(x)
    prefix = pl.col("_prefix")
    frame = frame.with_columns(col.str.extract(f"^(?:{plan.npfp.pattern})", 0).alias("_prefix"))
    frame = frame.with_columns(col.str.slice(prefix.str.len_bytes()).alias(out))
    rest = pl.col(out)
    return frame.with_columns(
        pl.when(prefix.is_null() | (_viable(plan, col) & ~_viable(plan, rest)))
        .then(col)
        .otherwise(rest)
        .alias(out)
    ).drop("_prefix")


def _keep(plan: _Plan, frame: pl.LazyFrame, x: str, out: str) -> pl.LazyFrame:
    """`_Plan.keep`: the stripped number, unless its length is then not possible."""
    frame = _strip(plan, frame, x, "_stripped")
    stripped = pl.col("_stripped")
    unchanged = (stripped == pl.col(x)) | _length(plan, stripped).is_in(sorted(_KEEP_UNSTRIPPED))
    return frame.with_columns(
        pl.when(unchanged).then(pl.col(x)).otherwise(stripped).alias(out)
    ).drop("_stripped")


def _plain(plan: _Plan | None) -> bool:
    """Plans this module covers: known, with no national-prefix transform rule."""
    return plan is not None and plan.rule is None


# -- the type matchers -----------------------------------------------------------------------------


def _desc(desc: object) -> pl.Expr | None:
    """`_TypeMatcher._desc` as a condition on `n`: its possible lengths and its pattern."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern:
        return None
    lengths = sorted({n for n in (getattr(desc, "possible_length", ()) or ()) if n > 0})
    if getattr(desc, "possible_length", None) and not lengths:
        return None
    match = _n.str.contains(_full(pattern))
    if not lengths:
        return match
    return _n.str.len_bytes().cast(pl.Int32).is_in(lengths) & match


# number types as small codes (a million cells would otherwise each get a string of their own)
_KINDS: Final = ("", "unknown", *(name for name in TYPE_NAMES.values() if name != "unknown"))
_CODE: Final = {name: pl.lit(k, pl.UInt8) for k, name in enumerate(_KINDS)}
_UNKNOWN: Final = _KINDS.index("unknown")
_FIXED: Final = _KINDS.index("fixed_line")
# reasons for invalid numbers, registered as the expressions are built; code 0: valid
_REASONS: list[str] = [""]
_REASON_CODES: dict[str, int] = {"": 0}
_REGISTERING = threading.Lock()  # a library caller may normalise on several threads


def _reason(text: str) -> pl.Expr:
    with _REGISTERING:
        code = _REASON_CODES.get(text)
        if code is None:
            code = _REASON_CODES[text] = len(_REASONS)
            _REASONS.append(text)
    return pl.lit(code, pl.UInt16)


@cache
def _matcher(region: str, cc: int) -> tuple[dict[str, pl.Expr], pl.Expr]:
    """`phones._TypeMatcher` for one region: its tests (named columns, computed side by side)
    and the type code of `n` they give ("unknown" when none)."""
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    unknown = _CODE["unknown"]
    if md is None:
        return {}, unknown
    general = _desc(md.general_desc)
    parts = [
        (name, d) for attr, name in _ORDERED_TYPES if (d := _desc(getattr(md, attr))) is not None
    ]
    fixed, mobile = _desc(md.fixed_line), _desc(md.mobile)
    same = bool(md.same_mobile_and_fixed_line_pattern)
    if fixed is not None:
        parts.append(("fixed_line", fixed))
    if mobile is not None and not same:
        parts.append(("mobile", mobile))
    if general is None or not parts:
        return {}, unknown
    tests = {"_general": general, **{f"_{name}": cond for name, cond in parts}}
    if mobile is not None:
        tests["_mobile"] = mobile
    kind: pl.Expr = unknown
    for name, _ in reversed(parts):
        kind = pl.when(pl.col(f"_{name}")).then(_CODE[name]).otherwise(kind)
    if fixed is not None:
        both = pl.lit(same) if same or mobile is None else pl.col("_mobile")
        kind = pl.when((kind == _FIXED) & both).then(_CODE["fixed_line_or_mobile"]).otherwise(kind)
    return tests, pl.when(pl.col("_general")).then(kind).otherwise(unknown)


def _typed(frame: _Frame, region: str, cc: int) -> _Frame:
    """`frame` with column `kind`: the type code of its numbers `n` in `region`."""
    tests, kind = _matcher(region, cc)
    if tests:
        frame = frame.with_columns(**tests)
    return frame.with_columns(kind.alias("kind")).drop(list(tests))


def _classify(cc: int, frame: pl.LazyFrame) -> pl.LazyFrame:
    """`phones._classify`: column `kind` (a type code) for the numbers `n` of one calling code."""
    regions = _country(cc)
    if len(regions) == 1:
        return _typed(frame, regions[0][0], cc)
    # several regions: the first whose leading digits match decides; without leading digits, the
    # first whose matcher knows the number. Worked out here, not in the query: only the regions
    # some number belongs to get their matcher's patterns compiled (11 of 34 at a cold 200k).
    done: list[pl.DataFrame] = []
    pending = frame.collect()
    for region, lead in regions:
        if pending.is_empty():
            break
        if lead is not None:
            hit = pending["n"].str.contains(f"^(?:{lead.pattern})")
            chosen = pending.filter(hit)
            if not chosen.is_empty():
                done.append(_typed(chosen, region, cc))
            pending = pending.filter(~hit)
        else:
            tried = _typed(pending, region, cc)
            known = tried["kind"] != _UNKNOWN
            done.append(tried.filter(known))
            pending = pending.filter(~known)
    done.append(pending.with_columns(_CODE["unknown"].alias("kind")))
    return pl.concat(done).lazy()


def _answer(cc: int, plan: _Plan, frame: pl.LazyFrame) -> pl.LazyFrame:
    """`phones._answer`: columns i, e164, kind and reason (codes) for the numbers `n` of `cc`."""
    frame = _classify(cc, frame)
    valid = pl.col("kind") != _UNKNOWN
    where = _where(cc)
    code = _length(plan, _n)
    words = _reason(f"invalid for {where}")
    for result, text in _LENGTH_WORDS.items():
        words = pl.when(code == result).then(_reason(text.format(where))).otherwise(words)
    return frame.select(
        "i",
        pl.when(valid).then(pl.lit(f"+{cc}") + _n).otherwise(pl.lit("")).alias("e164"),
        pl.when(valid).then(pl.col("kind")).otherwise(_CODE[""]).alias("kind"),
        pl.when(valid).then(_reason("")).otherwise(words).alias("reason"),
    )


def _sized(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The rows whose national number has 4 to 17 digits (`phones` defers the others)."""
    return frame.filter(_n.str.len_bytes().is_between(4, 17))


# -- the two shapes --------------------------------------------------------------------------------


def _international(frame: pl.DataFrame) -> Iterator[pl.LazyFrame]:
    """`phones._fast_international` over column `d` (the digits after "+"): a query per
    calling code."""
    d = pl.col("d")
    frame = frame.filter((d.str.len_bytes() >= 4) & ~d.str.starts_with("0"))
    frame = frame.with_columns(d.str.extract(_CALLING_CODE, 1).alias("cc")).drop_nulls("cc")
    for (code,), group in frame.partition_by("cc", as_dict=True).items():
        plan = _main_plan(int(str(code)))
        if group.height < MIN_GROUP or plan is None or not _plain(plan):
            continue
        rest = group.lazy().with_columns(d.str.slice(len(str(code))).alias("rest"))
        yield from _guarded(partial(_international_group, plan, rest))


def _international_group(plan: _Plan, rest: pl.LazyFrame) -> list[pl.LazyFrame]:
    return [_answer(plan.cc, plan, _sized(_keep(plan, rest, "rest", "n")))]


def _collected(parts: list[pl.LazyFrame]) -> pl.DataFrame | None:
    """The answers of every calling code and region, in one query (polars' own cost per query
    is paid once: a query per step cost ~0.05-0.1 s more at a cold 200k). When polars refuses a
    pattern (a future metadata release may hold one its engine does not accept; the tests check
    today's), each part alone: those it refuses give no answer, their cells take the scalar
    path."""
    if not parts:
        return None
    try:
        return pl.concat(parts).collect()
    except pl.exceptions.PolarsError:
        pass
    answered = []
    for part in parts:
        with contextlib.suppress(pl.exceptions.PolarsError):
            answered.append(part.collect())
    return pl.concat(answered) if answered else None


def _guarded(build: Callable[[], list[pl.LazyFrame]]) -> list[pl.LazyFrame]:
    """`build()`, or no query when polars refuses a pattern while it is built (`_classify` runs
    a query to choose among a calling code's regions): those cells take the scalar path."""
    try:
        return build()
    except pl.exceptions.PolarsError:
        return []


def _national(frame: pl.DataFrame, region: str) -> list[pl.LazyFrame]:
    """`phones._fast_national` over column `d` (national digits, no "+") for one region."""
    plan = _region_plan(region)
    if plan is None or frame.height < MIN_GROUP:
        return []
    main = plan.main
    if main is None or not _plain(plan) or not _plain(main):
        return []
    return _guarded(lambda: list(_national_answers(frame.lazy(), plan, main)))


def _national_answers(frame: pl.LazyFrame, plan: _Plan, main: _Plan) -> Iterator[pl.LazyFrame]:
    d = pl.col("d")
    frame = frame.filter(d.str.len_bytes() >= 4)
    if plan.idd_digits:
        frame = frame.filter(~d.str.starts_with(plan.idd_digits))
    elif plan.idd is not None:
        frame = frame.filter(~d.str.contains(f"^(?:{plan.idd.pattern})"))
    # written with the region's country code but no "+": stripped when the number without it is
    # viable and the whole is not, or the whole is too long
    with_cc = frame.filter(d.str.starts_with(plan.cc_str))
    with_cc = _strip(
        plan, with_cc.with_columns(d.str.slice(len(plan.cc_str)).alias("r")), "r", "rest"
    )
    drop = (~_viable(plan, d) & _viable(plan, pl.col("rest"))) | (_length(plan, d) == _TOO_LONG)
    with_cc = with_cc.with_columns(drop.alias("drop"))
    dropped = with_cc.filter(pl.col("drop") & (pl.col("rest").str.len_bytes() >= 2))
    yield _answer(plan.cc, main, _sized(_keep(main, dropped, "rest", "n")))
    kept = pl.concat(
        [
            frame.filter(~d.str.starts_with(plan.cc_str)),
            with_cc.filter(~pl.col("drop")).select("i", "d"),
        ]
    )
    yield _answer(plan.cc, main, _sized(_keep(plan, kept, "d", "n")))


def normalize_column(raws: Sequence[str], region: str | None) -> list[PhoneResult | None]:
    """`normalize_fast(raw, region)` for each cell where this path is sure of it, else None.

    A `CHUNK` of cells at a time: polars' working columns stay small (a cold 1M-row plan
    peaked at 724 MB so, 790 MB with every cell in one frame)."""
    out: list[PhoneResult | None] = []
    for start in range(0, len(raws), CHUNK):
        out += _chunk(raws[start : start + CHUNK], region)
    return out


def _plain_cells(cells: pl.LazyFrame) -> pl.LazyFrame:
    """`normalize_fast`'s first branch (digits with spaces, dashes or parentheses): columns i
    and c, the compact number with a leading `00` made "+"."""
    raw, c, h = pl.col("raw"), pl.col("c"), pl.col("h")
    cells = cells.with_columns(raw.str.strip_chars_start(_SPACES).str.slice(0, 3).alias("h"))
    cells = cells.filter(
        ~h.str.starts_with("-")
        & ~(
            raw.str.contains("-", literal=True)
            & raw.str.strip_chars(_SPACES).str.contains(_full(_DATE.pattern))
        )
    )
    double_zero = c.str.starts_with("00") & (h.str.starts_with("00") | (h == "(00"))
    return cells.select(
        "i", pl.when(double_zero).then(pl.lit("+") + c.str.slice(2)).otherwise(c).alias("c")
    )


def _screened(cells: pl.LazyFrame) -> pl.LazyFrame:
    """Cells with a "." or "/": `screen()` then `fast_phone`'s compact form (columns i, c). Of
    screen's refusals only a date and a negative number can be written with these characters;
    `923001112233.0` loses its `.0`, a leading `00` or `(00` becomes "+"."""
    s = pl.col("s")
    cells = cells.with_columns(pl.col("raw").str.strip_chars(_SPACES).alias("s"))
    cells = cells.filter(~s.str.contains(_full(_DATE.pattern)) & ~s.str.contains(r"^-\s*\d"))
    whole = s.str.extract(_full(r"(\d+)\.0+"), 1)
    cells = cells.with_columns(pl.when(whole.is_null()).then(s).otherwise(whole).alias("s"))
    cells = cells.with_columns(
        pl.when(s.str.starts_with("00"))
        .then(pl.lit("+") + s.str.slice(2))
        .when(s.str.starts_with("(00"))
        .then(pl.lit("+") + s.str.slice(3).str.replace(")", "", literal=True, n=1))
        .otherwise(s)
        .alias("s")
    )
    c = s.str.replace_all(_PUNCT_CLASS, "")
    return cells.select("i", c.alias("c")).filter(pl.col("c").str.contains(_DIGITS))


def _chunk(raws: Sequence[str], region: str | None) -> list[PhoneResult | None]:
    out: list[PhoneResult | None] = [None] * len(raws)
    if not raws:
        return out
    raw, c = pl.col("raw"), pl.col("c")
    try:
        frame = pl.DataFrame({"raw": raws}, schema={"raw": pl.String})
    except UnicodeEncodeError:  # a lone surrogate (a caller's own strings): the scalar path
        return out
    cells = (
        frame.lazy()
        .with_row_index("i")
        .with_columns(raw.str.replace_all(_PUNCT_CLASS, "").alias("c"))
        # digits, "+" and the punctuation phones deletes: nothing else for screen() to see
        .filter(c.str.contains(_DIGITS))
    )
    dotted = raw.str.contains(r"[./]")
    frame = pl.concat(
        [_plain_cells(cells.filter(~dotted)), _screened(cells.filter(dotted))]
    ).collect()
    plus = c.str.starts_with("+")
    parts = list(_international(frame.filter(plus).select("i", c.str.slice(1).alias("d"))))
    if region is not None:
        parts += _national(frame.filter(~plus).select("i", c.alias("d")), region)
    answered = _collected(parts)
    if answered is None:
        return out
    rows = zip(
        answered["e164"].to_list(),
        map(_KINDS.__getitem__, answered["kind"].to_list()),
        repeat(""),
        map(_REASONS.__getitem__, answered["reason"].to_list()),
    )
    for i, row in zip(answered["i"].to_list(), rows, strict=True):
        out[i] = row
    return out
