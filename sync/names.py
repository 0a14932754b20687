"""Names, groups and countries as rows give them: cleaned the way the server will see them."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import phonenumbers

MIN_NAME_BYTES: Final = 4  # the server refuses a name under 4 bytes after trimming + HTML-escaping
_CONTROLS: Final = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}


def clean_name(value: str) -> str:
    """Trimmed, inner whitespace collapsed, control characters removed."""
    if not value:
        return ""
    if value.isprintable() and "  " not in value and value[0] != " " and value[-1] != " ":
        return value  # the common case, already clean
    return " ".join(value.translate(_CONTROLS).split())


def name_bytes(name: str) -> int:
    """The length the server checks: UTF-8 bytes of the HTML-escaped name."""
    return len(html.escape(name, quote=True).encode("utf-8"))


def too_short(name: str) -> bool:
    # escaping only lengthens and every character is at least one byte: 4+ characters are enough
    return len(name) < MIN_NAME_BYTES and name_bytes(name) < MIN_NAME_BYTES


def join_parts(parts: Sequence[str]) -> str:
    return " ".join(p for p in (clean_name(x) for x in parts) if p)


def split_groups(
    value: str, separators: Sequence[str], drop: frozenset[str], strip_prefix: str
) -> list[str]:
    """`* myContacts ::: Navy, VIP` → `["Navy", "VIP"]`: split, trim, drop, strip system prefix."""
    if not value or value.isspace():
        return []
    parts = [value]
    for sep in separators:
        parts = [piece for part in parts for piece in part.split(sep)]
    out: list[str] = []
    for part in parts:
        name = clean_name(part)
        if not name or name.casefold() in drop:
            continue
        if strip_prefix and name.startswith(strip_prefix):
            name = name[len(strip_prefix) :].strip()
        if name and name not in out:
            out.append(name)
    return out


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    """English country names → region, from phonenumbers' own data (loaded only when needed)."""
    from phonenumbers.geocoder import country_name_for_number

    names: dict[str, str] = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        if example is not None:
            name = country_name_for_number(example, "en")
            if name:
                names.setdefault(name.casefold(), region)
    names.update({"uk": "GB", "usa": "US", "united states of america": "US", "uae": "AE"})
    return names


_CALLING = re.compile(r"(?:\+|00)?(\d{1,3})")


def country_region(value: str) -> str | None:
    """A per-row country cell as a region: ISO code (`pk`), calling code (`+92`) or English name.

    Returns None when the cell is not understood.
    """
    text = value.strip()
    upper = text.upper()
    if upper in phonenumbers.SUPPORTED_REGIONS:
        return upper
    m = _CALLING.fullmatch(text)
    if m:
        region = phonenumbers.region_code_for_country_code(int(m.group(1)))
        return None if region in ("ZZ", "001") else region
    return _country_names().get(" ".join(text.split()).casefold())
