"""Desired contacts + the remote listing → a Plan. Pure: no I/O, so it is property-tested and a
saved plan means exactly what it says.

Per phone (E.164, the key):
    not on the remote, opted out         → skip_optout (never re-subscribe someone who said stop)
    not on the remote                    → create
    on the remote, same name and groups  → unchanged
    on the remote, other name or groups  → drift (left alone) or, with replace_changed, replace
                                           (delete then create; never for an opted-out phone)
    only on the remote                   → delete in mirror mode when in scope, else keep
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import compress, repeat
from operator import attrgetter
from typing import Any, Final, Literal

import phonenumbers

from sync.errors import ConfigError, SafetyError
from sync.groups import GroupIndex, missing_groups
from sync.models import DesiredContact, OptOut, Origin, RemoteContact, RemoteGroup
from sync.settings import Limit
from sync.table import Table, all_equal, column, concat, take, where

Action = Literal["create", "delete", "replace", "unchanged", "drift", "skip_optout", "keep"]
WRITE_ACTIONS = frozenset({"create", "delete", "replace"})
# 1: entries as objects; 2: entries as arrays in ENTRY_FIELDS order; 3: arrays in SAVED_FIELDS
# order, the origin flattened (file, sheet, row) and its file an index into the plan's `files`;
# 4: as 3, column-wise: `columns` maps each of SAVED_FIELDS to one array, a value per write;
# 5: as 4, and a column whose writes all hold one value is `{"repeat": value}` (`count` writes)
PLAN_FORMAT = 5


@dataclass(frozen=True, slots=True)
class Entry:
    """What the plan does with one phone."""

    action: Action
    phone: str
    name: str
    groups: tuple[str, ...]  # desired group tokens; for remote-only entries, the remote ids
    reason: str = ""
    remote_id: int | None = None
    old_name: str | None = None
    old_groups: tuple[int, ...] = ()
    origin: Origin | None = None  # None for a contact that is only on the remote
    raw_phone: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        origin = Origin(**data["origin"]) if data.get("origin") else None
        return cls(
            **{
                **data,
                "groups": tuple(data["groups"]),
                "old_groups": tuple(data["old_groups"]),
                "origin": origin,
            }
        )

    @classmethod
    def from_row(cls, row: list[Any]) -> Entry:
        """An entry saved as an array by plan format 2, fields in `ENTRY_FIELDS` order."""
        origin, raw = row[_HEAD:]
        return _entry(row[:_HEAD], Origin(**origin) if origin else None, raw)


ENTRY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Entry))
# an entry as plan.json (format 3) holds it: `origin` flattened, `file` an index into `files`
_BEFORE_ORIGIN: Final = ENTRY_FIELDS[: ENTRY_FIELDS.index("origin")]
_AFTER_ORIGIN: Final = ENTRY_FIELDS[ENTRY_FIELDS.index("origin") + 1 :]
_HEAD: Final = len(_BEFORE_ORIGIN)  # the fields a saved entry holds before its origin
SAVED_FIELDS: tuple[str, ...] = (*_BEFORE_ORIGIN, "file", "sheet", "row", *_AFTER_ORIGIN)
_NO_ORIGIN: Final = Origin(None, None, None)  # type: ignore[arg-type]  # a remote-only entry's


def origin_columns(entries: Sequence[Entry]) -> list[Sequence[Any]]:
    """The file, sheet and row of every entry's origin (None for a remote-only entry): an
    optional Table's own columns, which hold None for such an entry; else read off each."""
    origins = column(entries, "origin")
    if not isinstance(origins, Table):
        origins = [_NO_ORIGIN if o is None else o for o in origins]
    return [column(origins, f) for f in ("file", "sheet", "row")]


def saved_columns(
    entries: Sequence[Entry], keep: Sequence[bool] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """The entries (those `keep` marks, when given) as plan format 5 saves them: a column per
    field of `SAVED_FIELDS`, the origin flattened; and the file names the `file` column indexes.
    A column whose saved values are all one value is `{"repeat": value}`: a million creates
    share their action, groups, empty reason and no remote id, old name, old groups, file index
    or sheet (43 of 99 MB); one that every entry shares is not even filtered. (At a million
    writes, arrays per entry took twice as long to make and write as columns: a tuple per
    entry, then a pass to put each on a line of its own.)"""
    count = len(entries) if keep is None else keep.count(True)
    files, sheets, rows = origin_columns(entries)
    full: dict[str, Sequence[Any]] = {f: column(entries, f) for f in _BEFORE_ORIGIN}
    full.update(file=files, sheet=sheets, row=rows)
    full.update((f, column(entries, f)) for f in _AFTER_ORIGIN)
    columns = {f: _saved(full[f], keep, count) for f in SAVED_FIELDS}
    saved_files = columns["file"]
    kept_files = [saved_files["repeat"]] if isinstance(saved_files, dict) else saved_files
    names = [f for f in dict.fromkeys(kept_files) if f is not None]
    at: dict[str | None, int | None] = {f: i for i, f in enumerate(names)}
    at[None] = None
    if isinstance(saved_files, dict):
        columns["file"] = {"repeat": at[saved_files["repeat"]]}
    else:
        columns["file"] = list(map(at.__getitem__, saved_files))
    return names, columns


def _saved(values: Sequence[Any], keep: Sequence[bool] | None, count: int) -> Any:
    """One saved column: the kept values, or `{"repeat": value}` when they are all one value."""
    if count and all_equal(values):
        return {"repeat": values[0]}  # every entry has it: so has every kept one
    if keep is None or count == len(values):
        return values  # every entry kept: their values are not all one (checked above)
    kept = list(compress(values, keep))
    if count and all_equal(kept):
        return {"repeat": kept[0]}
    return kept


def _saved_table(
    files: Sequence[str], columns: Mapping[str, Any], count: int | None = None
) -> Table[Entry]:
    """The entries plan formats 3 to 5 saved (a column per field of `SAVED_FIELDS`; from format
    5 on, `{"repeat": value}` for `count` equal values). A repeated value is converted once."""
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ValueError(f"not a count of writes: {count!r}")

    def read(name: str, convert: Callable[[Any], Any] | None = None) -> list[Any]:
        saved = columns[name]
        if isinstance(saved, dict):
            if count is None or list(saved) != ["repeat"]:
                raise ValueError(f"column {name!r} is neither an array nor a repeat")
            value = saved["repeat"]
            return [value if convert is None else convert(value)] * count
        values = list(saved)
        if count is not None and len(values) != count:
            raise ValueError(f"column {name!r} holds {len(values)} values, not {count}")
        return values if convert is None else list(map(convert, values))

    def file_name(i: int | None) -> str | None:
        return None if i is None else files[i]

    cols = {f: read(f) for f in SAVED_FIELDS if f not in ("groups", "old_groups", "file")}
    cols["groups"], cols["old_groups"] = read("groups", tuple), read("old_groups", tuple)
    origin = {"file": read("file", file_name), "sheet": cols.pop("sheet"), "row": cols.pop("row")}
    return Table(Entry, {**cols, "origin": Table(Origin, origin, optional="file")})


def _rows_to_columns(rows: Sequence[Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """Format 3's arrays, one per entry, as columns."""
    if not rows:
        return {f: [] for f in SAVED_FIELDS}
    return dict(zip(SAVED_FIELDS, zip(*rows, strict=True), strict=True))


def _entry(head: Sequence[Any], origin: Origin | None, raw: str) -> Entry:
    """An entry from a saved plan: the fields before its origin (arrays as JSON gives them),
    then its origin and raw phone."""
    action, phone, name, groups, reason, remote_id, old_name, old_groups = head
    return Entry(
        action,
        phone,
        name,
        tuple(groups),
        reason,
        remote_id,
        old_name,
        tuple(old_groups),
        origin,
        raw,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    mode: Literal["add", "mirror"]
    scope_group_ids: tuple[int, ...]
    group_creates: tuple[str, ...]
    entries: Sequence[Entry]  # a Table when made by make_plan: see sync.table
    fingerprint: str  # of the remote listing the plan was made against
    in_scope: int  # remote contacts in the mirror scope (the base of --max-delete)
    counts: dict[str, int] = field(default_factory=dict)

    def select(self, *actions: str) -> Sequence[Entry]:
        """The entries with these actions, in order (column-wise: nothing else is made)."""
        return where(self.entries, self._marked(actions))

    def _marked(self, actions: Iterable[str]) -> list[bool]:
        """Whether each entry's action is one of these."""
        return list(map(frozenset(actions).__contains__, column(self.entries, "action")))

    def of(self, *actions: str) -> list[Entry]:
        return list(self.select(*actions))

    @property
    def writes(self) -> list[Entry]:
        return self.of(*WRITE_ACTIONS)

    @property
    def has_writes(self) -> bool:
        return bool(self.group_creates) or not WRITE_ACTIONS.isdisjoint(
            column(self.entries, "action")
        )

    def to_json(self) -> dict[str, Any]:
        """The saved form (for orjson): only the writes are kept, plus the counts; enough to
        execute it."""
        keep = self._marked(WRITE_ACTIONS)
        files, columns = saved_columns(self.entries, keep)
        return {
            "format": PLAN_FORMAT,
            "mode": self.mode,
            "scope_group_ids": list(self.scope_group_ids),
            "group_creates": list(self.group_creates),
            "fingerprint": self.fingerprint,
            "in_scope": self.in_scope,
            "counts": self.counts,
            "fields": list(SAVED_FIELDS),
            # the origin flattened, its file an index: at 1M entries, 248 MB as objects (format
            # 1), 160 MB as arrays holding origin objects (2), 103 MB as flat arrays (3), 99 MB
            # as these columns (4), 56 MB with repeated values saved once (5)
            "files": files,
            "count": keep.count(True),
            "columns": columns,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        fmt = data.get("format")
        entries: Sequence[Entry]
        if fmt == 1:  # a plan made by an earlier version
            entries = tuple(Entry.from_json(e) for e in data["entries"])
        elif fmt == 2 and tuple(data.get("fields", ())) == ENTRY_FIELDS:
            entries = tuple(map(Entry.from_row, data["entries"]))
        elif fmt == 3 and tuple(data.get("fields", ())) == SAVED_FIELDS:
            entries = _saved_table(data["files"], _rows_to_columns(data["entries"]))
        elif fmt == 4 and tuple(data.get("fields", ())) == SAVED_FIELDS:
            entries = _saved_table(data["files"], data["columns"])
        elif fmt == PLAN_FORMAT and tuple(data.get("fields", ())) == SAVED_FIELDS:
            entries = _saved_table(data["files"], data["columns"], data["count"])
        else:
            raise ConfigError(
                f"plan format {fmt!r} is not one this version reads (1 to {PLAN_FORMAT})",
                hint="make the plan again with this version: contact-sync plan ...",
            )
        return cls(
            mode=data["mode"],
            scope_group_ids=tuple(data["scope_group_ids"]),
            group_creates=tuple(data["group_creates"]),
            entries=entries,
            fingerprint=data["fingerprint"],
            in_scope=data["in_scope"],
            counts=dict(data["counts"]),
        )


def fingerprint(
    contacts: Iterable[RemoteContact], groups: Iterable[RemoteGroup], optouts: Iterable[OptOut]
) -> str:
    """A digest of everything the plan depends on in the remote."""
    payload = [
        sorted((c.id, c.phone, c.name, sorted(c.groups)) for c in contacts),
        sorted((g.id, g.name) for g in groups),
        sorted(o.phone for o in optouts),
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def remote_key(phone: str, region: str | None = None) -> str:
    """The E.164 key of a remote phone (the server stores E.164; anything else is parsed)."""
    if phone.startswith("+") and phone[1:].isdigit():
        return phone
    from sync.phones import parse_number  # (a rare path: not loaded on the nightly one)

    try:
        parsed = parse_number(phone, region)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def make_plan(
    desired: Sequence[DesiredContact],
    contacts: Sequence[RemoteContact],
    groups: Sequence[RemoteGroup],
    optouts: Sequence[OptOut],
    *,
    mode: Literal["add", "mirror"] = "add",
    scope_groups: Sequence[str] = (),
    replace_changed: bool = False,
    fallback_group: str = "contact-sync",
    region: str | None = None,
) -> Plan:
    index = GroupIndex.build(groups)
    scope_ids = _scope_ids(scope_groups, index)
    opted_out = {remote_key(o.phone, region) for o in optouts}
    remote: dict[str, RemoteContact] = {}
    for rc in sorted(contacts, key=lambda rc: rc.id):
        remote.setdefault(remote_key(rc.phone, region), rc)

    fallback = (fallback_group,)

    def used_by(name: str) -> tuple[int, object]:
        rows = [d.origin for d in desired if name in (d.groups or fallback)]
        return len(rows), rows[0] if rows else "?"

    # A million rows: the entries are made column-wise (a Table), never a row at a time. A
    # source row's entry takes its phone, name, groups, origin and raw phone from the desired
    # contact as they are; a new contact (the common case) is a create with nothing else set,
    # and only the others, a match or an opt-out, are decided one by one.
    n = len(desired)
    asked = column(desired, "groups")
    if asked.count(()) == n:  # no source gave a group (the usual spreadsheet): all the fallback
        wanted_groups, lists = [fallback] * n, dict.fromkeys([fallback] if n else [])
    else:
        wanted_groups = [g or fallback for g in asked]
        lists = dict.fromkeys(wanted_groups)
    group_creates = missing_groups(lists, index, used_by)
    phones = column(desired, "phone")
    known = remote.keys() | opted_out
    matched_at = list(compress(range(n), map(known.__contains__, phones)))
    actions: list[Action] = list(repeat("create", n))
    reasons: list[str] = list(repeat("", n))
    remote_ids: list[int | None] = list(repeat(None, n))
    old_names: list[str | None] = list(repeat(None, n))
    old_groups: list[tuple[int, ...]] = list(repeat((), n))
    for k, d in zip(matched_at, take(desired, matched_at), strict=True):
        r = remote.get(d.phone)
        actions[k], reasons[k], remote_ids[k], old_names[k], old_groups[k] = _match(
            d, wanted_groups[k], r, d.phone in opted_out, index, replace_changed
        )
    # every row no remote contact matched is a create: only the matched ones are counted
    counts: Counter[str] = Counter(map(actions.__getitem__, matched_at))
    if created := n - len(matched_at):
        counts["create"] += created
    origins = column(desired, "origin")
    if isinstance(origins, Table):  # a remote-only entry has none
        origins = Table(origins.cls, origins.columns, optional="file")
    source: Table[Entry] = Table(
        Entry,
        {
            "action": actions,
            "phone": phones,
            "name": column(desired, "name"),
            "groups": wanted_groups,
            "reason": reasons,
            "remote_id": remote_ids,
            "old_name": old_names,
            "old_groups": old_groups,
            "origin": origins,
            "raw_phone": column(desired, "raw_phone"),
        },
    )
    # a remote phone some source row wants is that row's phone, and the row matched: no need
    # for a set of every desired phone (a million)
    wanted = set(map(phones.__getitem__, matched_at))
    del matched_at, actions, reasons, remote_ids, old_names, old_groups, origins, wanted_groups
    entries: list[Entry] = []  # remote-only
    del phones

    in_scope = 0
    for phone, r in remote.items():
        scoped = not scope_ids or bool(set(r.groups) & set(scope_ids))
        in_scope += scoped
        if phone in wanted:
            continue
        gids = tuple(str(g) for g in r.groups)
        if mode == "mirror" and scoped:
            entries.append(
                Entry("delete", phone, r.name, gids, "not in the sources", remote_id=r.id)
            )
        else:
            why = "add mode keeps remote-only contacts" if mode == "add" else "outside the scope"
            entries.append(Entry("keep", phone, r.name, gids, why, remote_id=r.id))
    # Remote duplicates of one key (possible only if the server held non-E.164 phones).
    seen = {r.id for r in remote.values()}
    for c in contacts:
        if c.id not in seen:
            entries.append(
                Entry(
                    "keep",
                    c.phone,
                    c.name,
                    tuple(map(str, c.groups)),
                    "a second remote contact with the same phone",
                    remote_id=c.id,
                )
            )

    counts.update(map(attrgetter("action"), entries))
    return Plan(
        mode,
        scope_ids,
        group_creates,
        # the lists made above are this plan's own: extended, not copied
        concat(source, entries, extend=_MADE_HERE),
        fingerprint(contacts, groups, optouts),
        in_scope,
        dict(counts),
    )


_MADE_HERE: Final = ("action", "groups", "reason", "remote_id", "old_name", "old_groups")


def _scope_ids(scope_groups: Sequence[str], index: GroupIndex) -> tuple[int, ...]:
    ids = []
    for token in scope_groups:
        gid = index.lookup(token)
        if gid is None:
            raise ConfigError(
                f"--scope-group {token!r}: no such group on the remote",
                hint="use the name or id of an existing group (a typo here would make the "
                "scope empty)",
            )
        ids.append(gid)
    return tuple(sorted(set(ids)))


_Match = tuple[Action, str, int | None, str | None, tuple[int, ...]]


def _match(
    c: DesiredContact,
    tokens: tuple[str, ...],
    r: RemoteContact | None,
    opted_out: bool,
    index: GroupIndex,
    replace_changed: bool,
) -> _Match:
    """What to do with a desired contact whose phone is on the remote or opted out: action,
    reason, remote id, old name, old groups."""
    if r is None:
        return ("skip_optout", _OPTED_OUT, None, None, ()) if opted_out else _NEW
    ids = index.resolve(tokens)
    old_groups = tuple(sorted(r.groups))
    action: Action = "unchanged"
    reason = ""
    if r.name != c.name or ids is None or set(ids) != set(r.groups):
        diffs = []
        if r.name != c.name:
            diffs.append(f"name {r.name!r} → {c.name!r}")
        if ids is None or set(ids) != set(r.groups):
            diffs.append(f"groups {list(old_groups)} → {list(tokens)}")
        reason = "; ".join(diffs)
        if replace_changed and not opted_out:
            action = "replace"
        else:
            action = "drift"
            why = " (opted out: never replaced)" if opted_out else " (use --replace-changed)"
            reason += why
    return action, reason, r.id, r.name, old_groups


_NEW: Final[_Match] = ("create", "", None, None, ())
_OPTED_OUT = "the phone opted out (get/unsubscribed)"


def check_guards(
    plan: Plan,
    *,
    rows_read: int,
    valid: int,
    invalid: int,
    max_delete: Limit,
    max_invalid: Limit,
) -> None:
    """Refuse the whole run (all or nothing) before the first write. Raises SafetyError."""
    if plan.mode == "mirror" and valid == 0:
        raise SafetyError(
            f"mirror refused: the sources yield no valid rows ({rows_read} rows read), so it "
            f"would delete all {plan.in_scope} contacts in scope",
            hint="check the input file (was it exported empty?) and the mapping (contact-sync "
            "check SOURCE)",
        )
    if invalid > max_invalid.allowed(rows_read):
        raise SafetyError(
            f"{invalid} of {rows_read} rows are invalid, above --max-invalid {max_invalid}",
            hint="run `contact-sync check SOURCE` to see why (wrong --region or mapping?), or "
            "raise --max-invalid if that many rejections are expected",
        )
    actions = column(plan.entries, "action")
    deleting = actions.count("delete") + actions.count("replace")  # counted in C: 1M entries
    if deleting > max_delete.allowed(plan.in_scope):
        raise SafetyError(
            f"{deleting} deletions (deletes and replaces) of {plan.in_scope} contacts in scope "
            f"are above --max-delete {max_delete}; nothing was changed",
            hint="read the plan's report to be sure, then raise --max-delete (e.g. "
            f"--max-delete {deleting}) or narrow --scope-group",
        )
