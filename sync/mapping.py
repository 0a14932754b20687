"""Column mappings: which headers hold the phone, the name, the groups and the country.

A mapping is a TOML file (see `mappings/default.toml` for every key, commented). `load_mapping()`
finds the packaged default, a shipped preset by bare name (`google-contacts`, `outlook`) or a path,
applies the command-line overrides and refuses unknown keys, naming the closest valid one.
`resolve()` matches a mapping against one file's header, case- and space-insensitively.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import tomllib
from collections.abc import Mapping as AnyMapping
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import phonenumbers

from sync.errors import ConfigError

NAME_POLICIES: Final = ("first", "last", "longest")
FALLBACKS: Final = ("parts", "company", "phone")


@dataclass(frozen=True, slots=True)
class Mapping:
    """What to read from a sheet and how. Column entries are header names or `*` patterns."""

    phone_columns: tuple[str, ...] = ("phone",)  # tried in this order: mobile before home
    not_phone_columns: tuple[str, ...] = ()  # never a phone, even if a pattern matches (fax...)
    phone_label_columns: tuple[str, ...] = ()  # e.g. "phone * - label": the `*` of the value column
    preferred_labels: tuple[str, ...] = ("mobile", "cell", "whatsapp")  # these labels go first
    skipped_labels: tuple[str, ...] = ("fax", "pager", "telex")  # numbers with these labels skipped
    name_columns: tuple[str, ...] = ("name",)
    first_name_columns: tuple[str, ...] = ()
    middle_name_columns: tuple[str, ...] = ()
    last_name_columns: tuple[str, ...] = ()
    company_columns: tuple[str, ...] = ()
    name_fallback: tuple[str, ...] = ("parts", "company", "phone")  # [] → reject short names
    group_columns: tuple[str, ...] = ()
    group_separators: tuple[str, ...] = (" ::: ", ",", ";")
    drop_groups: tuple[str, ...] = ()  # labels that are not groups (Google's "* myContacts")
    strip_group_prefix: str = ""  # "* " on Google's system groups ("* Friends" → "Friends")
    country_columns: tuple[str, ...] = ()
    default_region: str | None = None
    default_groups: tuple[str, ...] = ()
    sheet: str = "first"  # "first" (first visible), a sheet name, or "*" (every visible sheet)
    require_mobile: bool = False
    name_policy: str = "first"  # which duplicate row's name wins: first | last | longest
    max_name_length: int = 255
    source: str = field(default="built-in", compare=False)  # where it was loaded from


# TOML key → Mapping field. Top-level keys, then the [columns], [labels] and [group_values] tables.
_TOP: Final = {
    "extends": "",
    "region": "default_region",
    "groups": "default_groups",
    "sheet": "sheet",
    "require_mobile": "require_mobile",
    "name_policy": "name_policy",
    "name_fallback": "name_fallback",
    "max_name_length": "max_name_length",
    "description": "",
}
_COLUMNS: Final = {
    "phone": "phone_columns",
    "not_phone": "not_phone_columns",
    "phone_label": "phone_label_columns",
    "name": "name_columns",
    "first_name": "first_name_columns",
    "middle_name": "middle_name_columns",
    "last_name": "last_name_columns",
    "company": "company_columns",
    "groups": "group_columns",
    "country": "country_columns",
}
_LABELS: Final = {"prefer": "preferred_labels", "skip": "skipped_labels"}
_GROUP_VALUES: Final = {
    "separators": "group_separators",
    "drop": "drop_groups",
    "strip_prefix": "strip_group_prefix",
}
_TABLES: Final = {"columns": _COLUMNS, "labels": _LABELS, "group_values": _GROUP_VALUES}
PRESETS: Final = ("default", "google-contacts", "outlook")


def mapping_dirs() -> list[Path]:
    """Where shipped mappings live: `sync/mappings` (wheel), top-level `mappings/` (checkout)."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "mappings", here.parent / "mappings") if d.is_dir()]


def _preset_path(name: str) -> Path | None:
    for d in mapping_dirs():
        p = d / f"{name}.toml"
        if p.is_file():
            return p
    return None


def check_region(region: str, what: str = "region") -> str:
    """An upper-cased ISO 3166 region phonenumbers knows, or ConfigError."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        close = difflib.get_close_matches(code, sorted(phonenumbers.SUPPORTED_REGIONS), n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown {what} {region!r}",
            hint=f"{hint}use a two-letter ISO country code such as PK, GB or US",
        )
    return code


def _closest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a string or a list of strings, not {value!r}")


def _apply(base: Mapping, data: AnyMapping[str, Any], origin: str) -> Mapping:
    changes: dict[str, Any] = {}
    valid = [*_TOP, *_TABLES]
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            table = _TABLES[key]
            for sub, subvalue in value.items():
                if sub not in table:
                    listed = ", ".join(table)
                    raise ConfigError(
                        f"{origin}: unknown key {key}.{sub}",
                        hint=f"{_closest(sub, list(table))}valid keys in [{key}]: {listed}",
                    )
                name = table[sub]
                changes[name] = (
                    subvalue if name == "strip_group_prefix" else _strings(subvalue, f"{key}.{sub}")
                )
        elif key in _TOP:
            name = _TOP[key]
            if not name:
                continue
            if name in ("default_groups", "name_fallback"):
                changes[name] = _strings(value, key)
            else:
                changes[name] = value
        else:
            raise ConfigError(
                f"{origin}: unknown key {key!r}",
                hint=f"{_closest(key, valid)}valid top-level keys: {', '.join(valid)}",
            )
    try:
        return replace(base, **changes, source=origin)
    except TypeError as exc:  # pragma: no cover - guarded by the key tables
        raise ConfigError(f"{origin}: {exc}") from None


def _validate(m: Mapping) -> Mapping:
    where = m.source
    if not isinstance(m.sheet, str) or not m.sheet:
        raise ConfigError(f"{where}: sheet must be 'first', '*' or a sheet name")
    if m.name_policy not in NAME_POLICIES:
        raise ConfigError(
            f"{where}: name_policy {m.name_policy!r} is not one of {', '.join(NAME_POLICIES)}"
        )
    bad = [f for f in m.name_fallback if f not in FALLBACKS]
    if bad:
        raise ConfigError(
            f"{where}: name_fallback {bad[0]!r} is not one of {', '.join(FALLBACKS)}",
            hint=_closest(bad[0], FALLBACKS) or None,
        )
    if not isinstance(m.require_mobile, bool):
        raise ConfigError(f"{where}: require_mobile must be true or false")
    if not isinstance(m.max_name_length, int) or m.max_name_length < 4:
        raise ConfigError(f"{where}: max_name_length must be a whole number of at least 4")
    if not isinstance(m.strip_group_prefix, str):
        raise ConfigError(f"{where}: group_values.strip_prefix must be a string")
    if not m.phone_columns:
        raise ConfigError(f"{where}: [columns] phone must name at least one column")
    region = m.default_region
    if region is not None:
        if not isinstance(region, str):
            raise ConfigError(f"{where}: region must be a string such as 'PK'")
        m = replace(m, default_region=check_region(region))
    return m


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"mapping file not found: {path}",
            hint=f"give a path, or one of the shipped presets: {', '.join(PRESETS)}",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {path} is not valid TOML: {exc}") from None


def _load(spec: str | Path, seen: tuple[str, ...]) -> Mapping:
    path = Path(spec)
    if isinstance(spec, str) and "/" not in spec and not spec.endswith(".toml"):
        found = _preset_path(spec)
        if found is None:
            raise ConfigError(
                f"unknown mapping preset {spec!r}",
                hint=f"{_closest(spec, PRESETS)}presets: {', '.join(PRESETS)}; or give a path",
            )
        path = found
    key = str(path.resolve())
    if key in seen:
        raise ConfigError(f"mapping {path} extends itself")
    data = _read_toml(path)
    base = Mapping()
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends must be a preset name or a path")
        if "/" in parent or parent.endswith(".toml"):
            parent_path = (path.parent / parent).resolve()
            base = _load(parent_path, (*seen, key))
        else:
            base = _load(parent, (*seen, key))
    return _apply(base, data, str(path))


def load_mapping(
    spec: str | Path | None = None,
    *,
    region: str | None = None,
    groups: Sequence[str] = (),
) -> Mapping:
    """The mapping to use: the packaged default (None), a preset name, or a TOML path.

    `region` and `groups` are the `--region` and `--group` overrides: they replace the mapping's
    default region and default groups.
    """
    mapping = _load(spec if spec is not None else "default", ())
    if region is not None:
        mapping = replace(mapping, default_region=check_region(region, "--region"))
    if groups:
        clean = tuple(dict.fromkeys(g.strip() for g in groups if g.strip()))
        mapping = replace(mapping, default_groups=clean)
    return _validate(mapping)


# -- matching a header -----------------------------------------------------------------------------

_SPACES = re.compile(r"[\s_]+")


def header_key(header: str) -> str:
    """How headers compare: case-insensitive, spaces and underscores ignored."""
    return _SPACES.sub("", header.replace("\ufeff", "")).casefold()


@dataclass(frozen=True, slots=True)
class PhoneColumn:
    index: int
    label_index: int | None  # the column holding this number's label (Google "Phone 1 - Label")


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """One sheet's header resolved against a mapping: column indices per role."""

    phones: tuple[PhoneColumn, ...]
    name: tuple[int, ...]
    first: int | None
    middle: int | None
    last: int | None
    company: tuple[int, ...]
    groups: tuple[int, ...]
    country: int | None
    roles: tuple[tuple[str, str], ...]  # (header, role) for every column, "-" when unused


def _matches(keys: Sequence[str], patterns: Sequence[str]) -> list[tuple[int, str]]:
    """Indices of headers matching the patterns, in pattern order then column order."""
    out: list[tuple[int, str]] = []
    taken: set[int] = set()
    for pattern in patterns:
        pk = header_key(pattern)
        for i, k in enumerate(keys):
            if i not in taken and (k == pk or ("*" in pk and fnmatch.fnmatchcase(k, pk))):
                out.append((i, pk))
                taken.add(i)
    return out


def _label_for(
    value_key: str, pattern: str, keys: Sequence[str], labels: Sequence[str]
) -> int | None:
    """The label column paired with a phone value column through the `*` they share."""
    if "*" not in pattern or not labels:
        return None
    regex = re.escape(pattern).replace(r"\*", "(.*?)")
    m = re.fullmatch(regex, value_key)
    if m is None:
        return None
    for lab in labels:
        want = header_key(lab).replace("*", m.group(1), 1)
        if want in keys:
            return keys.index(want)
    return None


def resolve(mapping: Mapping, header: Sequence[str]) -> ColumnPlan:
    """Match the mapping's column names against a header. No phone column → empty `phones`."""
    keys = [header_key(h) for h in header]
    excluded = {i for i, _ in _matches(keys, mapping.not_phone_columns)}
    used: dict[int, str] = {}

    phones: list[PhoneColumn] = []
    for i, pattern in _matches(keys, mapping.phone_columns):
        if i in excluded:
            continue
        lab = _label_for(keys[i], pattern, keys, mapping.phone_label_columns)
        phones.append(PhoneColumn(i, lab))
        used[i] = f"phone {len(phones)}"
        if lab is not None:
            used[lab] = f"phone {len(phones)} label"

    def pick(patterns: Sequence[str], role: str, many: bool) -> list[int]:
        found = [i for i, _ in _matches(keys, patterns) if i not in used]
        found = found if many else found[:1]
        for i in found:
            used[i] = role
        return found

    name = pick(mapping.name_columns, "name", True)
    first = pick(mapping.first_name_columns, "first name", False)
    middle = pick(mapping.middle_name_columns, "middle name", False)
    last = pick(mapping.last_name_columns, "last name", False)
    company = pick(mapping.company_columns, "company (name fallback)", True)
    groups = pick(mapping.group_columns, "groups", True)
    country = pick(mapping.country_columns, "country", False)
    roles = tuple((h, used.get(i, "-")) for i, h in enumerate(header))
    return ColumnPlan(
        phones=tuple(phones),
        name=tuple(name),
        first=first[0] if first else None,
        middle=middle[0] if middle else None,
        last=last[0] if last else None,
        company=tuple(company),
        groups=tuple(groups),
        country=country[0] if country else None,
        roles=roles,
    )


def suggest_phone_column(mapping: Mapping, header: Sequence[str]) -> str | None:
    """The header closest to any phone column name, for 'no phone column' messages."""
    keys = {header_key(h): h for h in header if h.strip() and len(h) <= 100}
    wanted = [header_key(p).replace("*", "") for p in mapping.phone_columns]
    best: tuple[float, str] | None = None
    for k, h in keys.items():
        for w in wanted:
            score = difflib.SequenceMatcher(None, k, w).ratio()
            if score >= 0.6 and (best is None or score > best[0]):
                best = (score, h)
    return best[1] if best else None
