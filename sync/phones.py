"""One raw phone cell + a region → E.164, number type, extension, or a reason a person understands.

`normalize_phone()` is the reference: it screens what spreadsheets do to phones (dates, scientific
notation, formulas, negative numbers, NaN), then asks phonenumbers to parse, validate and format.
`fast_phone()` answers the common shapes ("+<digits>", "00<digits>", national digits) without
`phonenumbers.parse`, using phonenumbers' own metadata and the same decision order; it returns None
whenever it is not sure, and `tests/test_normalize.py` holds it to the reference on a large corpus.

A result is a plain tuple `(e164, number_type, extension, reason)` ("" where absent) so that it
pickles and marshals cheaply (process pool, persistent cache).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata

PhoneResult = tuple[str, str, str, str]  # e164, number type, extension, reason

TYPE_NAMES: Final[dict[int, str]] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}
MOBILE_TYPES: Final = frozenset({"mobile", "fixed_line_or_mobile"})

MISSING = "missing phone"
NOT_A_NUMBER = "not a phone number"

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_DATE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}[- ][A-Za-z]{3}[- ]\d{2,4}"
    r"|\d{1,2}:\d{2}(?::\d{2})?"
)
_FLOAT_TEXT = re.compile(r"(\d+)\.0+")
_NEGATIVE = re.compile(r"-\s*\d")
_NULLS: Final = frozenset(
    {"nan", "null", "none", "n/a", "#n/a", "na", "#value!", "#ref!", "#name?"}
)
_PUNCT = str.maketrans("", "", " \t-.()/\u00a0\u2009\u202f\u2010\u2011\u2012\u2013\u2014")
_DIGITS = re.compile(r"\+?[0-9]+")
_ODD_START: Final = frozenset("-=")  # a minus sign, a formula
_SEPS: Final = frozenset("./:")  # dates, times and "123.0" floats need screen()


def screen(raw: str) -> tuple[str, str]:
    """Undo spreadsheet artefacts and spot cells that cannot be phones: `(text, reason)`.

    `="0300..."` (the CSV trick that keeps a leading zero) and a leading apostrophe are unwrapped,
    `923001112233.0` loses its `.0`, a leading `00` becomes `+`; dates, scientific notation,
    formulas, negative numbers, NaN and multi-line cells get a reason instead.
    """
    s = raw.strip()
    if not s:
        return "", MISSING
    if s.startswith('="') and s.endswith('"') and len(s) > 3:
        s = s[2:-1].strip()
    elif s.startswith("'"):
        s = s[1:].strip()
    if "\n" in s or "\r" in s:
        return "", "cell spans several lines (unbalanced quote in the file?)"
    if s.startswith("="):
        return "", "a formula, not a phone number"
    if s.casefold() in _NULLS:
        return "", NOT_A_NUMBER
    if not any(c.isdigit() for c in s):
        return "", NOT_A_NUMBER + " (no digits)"
    if _SCIENTIFIC.fullmatch(s):
        return "", "scientific notation: Excel rounded the digits (format the column as text)"
    if _DATE.fullmatch(s):
        return "", "looks like a date or time (Excel may have converted the phone)"
    if _NEGATIVE.match(s):
        return "", "negative number, not a phone number"
    m = _FLOAT_TEXT.fullmatch(s)
    if m:
        s = m.group(1)
    if s.startswith("00"):
        s = "+" + s[2:]
    elif s[:1] == "(" and s[1:3] == "00":
        s = "+" + s[3:].replace(")", "", 1)
    return s, ""


def _invalid_reason(num: phonenumbers.PhoneNumber) -> str:
    cc = num.country_code or 0
    region = pnu.region_code_for_country_code(cc)
    where = f"region {region}" if region not in (None, "ZZ", "001") else f"+{cc}"
    why = phonenumbers.is_possible_number_with_reason(num)
    if why == ValidationResult.TOO_SHORT:
        return f"too short for {where}"
    if why == ValidationResult.TOO_LONG:
        return f"too long for {where}"
    if why == ValidationResult.INVALID_LENGTH:
        return f"wrong length for {where}"
    if why == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return f"too short for {where} (a local number without its area code?)"
    if why == ValidationResult.INVALID_COUNTRY_CODE:
        return f"unknown country code +{num.country_code}"
    return f"invalid for {where}"


def _parse_error_reason(exc: NumberParseException, text: str, region: str | None) -> str:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        if text.startswith("+") or region:
            return "unknown country code"
        return "national number but no country: set --region or add a country column"
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return "too short"
    if kind == NumberParseException.TOO_LONG:
        return "too long to be a phone number"
    return NOT_A_NUMBER


def normalize_phone(raw: str, region: str | None) -> PhoneResult:
    """The reference: screen, then phonenumbers parse / is_valid_number / format E.164."""
    text, reason = screen(raw)
    if reason:
        return ("", "", "", reason)
    return _slow(text, region)


def _slow(text: str, region: str | None) -> PhoneResult:
    try:
        num = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return ("", "", "", _parse_error_reason(exc, text, region))
    if not phonenumbers.is_valid_number(num):
        return ("", "", "", _invalid_reason(num))
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    kind = TYPE_NAMES.get(phonenumbers.number_type(num), "unknown")
    return (e164, kind, num.extension or "", "")


# -- the fast path ---------------------------------------------------------------------------------

_ORDERED_TYPES: Final = (
    ("premium_rate", "premium_rate"),
    ("toll_free", "toll_free"),
    ("shared_cost", "shared_cost"),
    ("voip", "voip"),
    ("personal_number", "personal_number"),
    ("pager", "pager"),
    ("uan", "uan"),
    ("voicemail", "voicemail"),
)


class _TypeMatcher:
    """phonenumbers' `_number_type_helper` for one region, as one compiled regular expression.

    The general description is a lookahead; the types follow as named alternatives in the helper's
    own order, so the first that matches fully (pattern and possible lengths) names the type.
    """

    __slots__ = ("combined", "mobile", "same")

    def __init__(self, md: PhoneMetadata) -> None:
        general = self._desc(md.general_desc)
        parts = [
            f"(?P<{name}>{d})"
            for attr, name in _ORDERED_TYPES
            if (d := self._desc(getattr(md, attr)))
        ]
        fixed = self._desc(md.fixed_line)
        mobile = self._desc(md.mobile)
        self.same = bool(md.same_mobile_and_fixed_line_pattern)
        if fixed:
            parts.append(f"(?P<fixed_line>{fixed})")
        if mobile and not self.same:
            parts.append(f"(?P<mobile>{mobile})")
        self.combined = (
            re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(parts)})") if general and parts else None
        )
        self.mobile = re.compile(mobile) if mobile else None

    @staticmethod
    def _desc(desc: object) -> str:
        """A description as a pattern: its possible lengths as a lookahead, then its pattern."""
        pattern = getattr(desc, "national_number_pattern", None)
        if desc is None or not pattern:
            return ""
        lengths = sorted(set(getattr(desc, "possible_length", ()) or ()))
        look = "|".join(f".{{{n}}}\\Z" for n in lengths if n > 0)
        if lengths and not look:
            return ""
        return (f"(?={look})" if look else "") + f"(?:{pattern})"

    def __call__(self, nsn: str) -> str:
        if self.combined is None:
            return "unknown"
        m = self.combined.fullmatch(nsn)
        if m is None:
            return "unknown"
        name = m.lastgroup or "unknown"
        if name == "fixed_line" and (self.same or (self.mobile and self.mobile.fullmatch(nsn))):
            return "fixed_line_or_mobile"
        return name


@cache
def _matcher(region: str, cc: int) -> _TypeMatcher | None:
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    return None if md is None else _TypeMatcher(md)


@cache
def _country(cc: int) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
    """The regions sharing a calling code, with their leading-digits pattern (as phonenumbers)."""
    out = []
    for region in pnu.COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
        md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
        if md is not None:
            lead = re.compile(md.leading_digits) if md.leading_digits else None
            out.append((region, lead))
    return tuple(out)


@cache
def _npfp(cc: int) -> re.Pattern[str] | None:
    """National prefix for parsing of the calling code's main region (stripped even after `+cc`)."""
    main = pnu.region_code_for_country_code(cc)
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, main)
    pattern = getattr(md, "national_prefix_for_parsing", None)
    return re.compile(pattern) if pattern else None


def _classify(cc: int, nsn: str) -> str:
    """Number type of a parsed number, following is_valid_number / number_type exactly."""
    regions = _country(cc)
    if len(regions) == 1:
        m = _matcher(regions[0][0], cc)
        return "unknown" if m is None else m(nsn)
    for region, lead in regions:
        m = _matcher(region, cc)
        if lead is not None:
            if lead.match(nsn):
                return "unknown" if m is None else m(nsn)
        elif m is not None and (kind := m(nsn)) != "unknown":
            return kind
    return "unknown"


def _fast_international(digits: str) -> PhoneResult | None:
    if len(digits) < 4 or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        cc = int(digits[:size])
        if cc in pnu.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    nsn = digits[size:]
    npfp = _npfp(cc)
    if not 4 <= len(nsn) <= 17 or (npfp is not None and npfp.match(nsn)):
        return None
    kind = _classify(cc, nsn)
    if kind == "unknown":
        return None  # the reference words the reason
    return ("+" + digits, kind, "", "")


@cache
def _region_info(region: str) -> tuple[PhoneMetadata, str, re.Pattern[str] | None] | None:
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None or md.national_prefix_transform_rule:
        return None
    idd = re.compile(md.international_prefix) if md.international_prefix else None
    return md, str(md.country_code), idd


def _fast_national(digits: str, region: str) -> PhoneResult | None:
    info = _region_info(region)
    if info is None or len(digits) < 4:
        return None
    md, cc_str, idd = info
    if digits.startswith(cc_str) or (idd is not None and idd.match(digits)):
        return None
    _carrier, stripped, _ = pnu._maybe_strip_national_prefix_carrier_code(digits, md)
    nsn = digits
    if pnu._test_number_length(stripped, md) not in (
        ValidationResult.TOO_SHORT,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    ):
        nsn = stripped
    if not 4 <= len(nsn) <= 17:
        return None
    cc = md.country_code or 0
    kind = _classify(cc, nsn)
    if kind == "unknown":
        return None
    return (f"+{cc_str}{nsn}", kind, "", "")


def fast_phone(text: str, region: str | None) -> PhoneResult | None:
    """E.164 for a screened cell of a common shape, or None to defer to the reference."""
    compact = text.translate(_PUNCT)
    if not _DIGITS.fullmatch(compact):
        return None
    if compact[0] == "+":
        return _fast_international(compact[1:])
    if region is None:
        return None
    return _fast_national(compact, region)


def normalize_fast(raw: str, region: str | None) -> PhoneResult:
    """Same answer as `normalize_phone`, usually several times faster."""
    compact = raw.translate(_PUNCT)
    if (
        _DIGITS.fullmatch(compact)
        and raw.lstrip()[:1] not in _ODD_START
        and not _SEPS & set(raw)
        and not ("-" in raw and _DATE.fullmatch(raw.strip()))
    ):
        # digits with spaces, dashes or parentheses only: nothing for screen() to undo or refuse
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        if compact[0] == "+":
            hit = _fast_international(compact[1:])
        else:
            hit = None if region is None else _fast_national(compact, region)
        if hit is not None:
            return hit
    text, reason = screen(raw)
    if reason:
        return ("", "", "", reason)
    return fast_phone(text, region) or _slow(text, region)


def normalize_many(pairs: list[tuple[str, str | None]]) -> list[PhoneResult]:
    """Normalise a batch of (raw, region) pairs (top-level, so a process pool can run it)."""
    return [normalize_fast(raw, region) for raw, region in pairs]
