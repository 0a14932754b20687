"""Resolve group names and ids from the sources against the remote's `get/groups` listing.

A token of digits names a group by id when such a group exists; otherwise every token is a
name, matched exactly, then case-insensitively. A name held by two groups is an error that says
which ids. A name no group holds is to be created (at least 4 characters: the server's rule).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sync.errors import ConfigError
from sync.models import RemoteGroup

MIN_GROUP_NAME = 4


@dataclass(frozen=True, slots=True)
class GroupIndex:
    by_id: dict[int, RemoteGroup]
    by_name: dict[str, list[int]]
    by_folded: dict[str, list[int]]
    _memo: dict[tuple[str, ...], tuple[int, ...] | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, groups: Iterable[RemoteGroup]) -> GroupIndex:
        by_id: dict[int, RemoteGroup] = {}
        by_name: dict[str, list[int]] = defaultdict(list)
        by_folded: dict[str, list[int]] = defaultdict(list)
        for g in sorted(groups, key=lambda g: g.id):
            by_id[g.id] = g
            by_name[g.name.strip()].append(g.id)
            by_folded[g.name.strip().casefold()].append(g.id)
        return cls(by_id, dict(by_name), dict(by_folded))

    def resolve(self, tokens: tuple[str, ...]) -> tuple[int, ...] | None:
        """`resolve(tokens, self)`, memoised: a million rows share a handful of group lists."""
        if tokens not in self._memo:
            self._memo[tokens] = resolve(tokens, self)
        return self._memo[tokens]

    def lookup(self, token: str) -> int | None:
        """The id a token names, or None when no group holds it (raise when ambiguous)."""
        token = token.strip()
        if token.isdigit() and int(token) in self.by_id:
            return int(token)
        ids = self.by_name.get(token) or self.by_folded.get(token.casefold()) or []
        if len(ids) > 1:
            raise ConfigError(
                f"group name {token!r} is held by {len(ids)} groups "
                f"(ids {', '.join(map(str, ids))})",
                hint=f"use the id of the one you mean (e.g. --group {ids[0]}), "
                "or rename or delete the other group in WaSMS",
            )
        return ids[0] if ids else None


def missing_groups(
    token_lists: Iterable[tuple[str, ...]],
    index: GroupIndex,
    used_by: Callable[[str], tuple[int, object]] = lambda name: (0, "?"),
) -> tuple[str, ...]:
    """Group names no remote group holds, in first-seen order, checked for creation.

    `token_lists` are the distinct group lists of the rows; `used_by(name)` says how many rows
    use a name and where first, and is only asked when a name cannot be created.
    """
    missing: dict[str, None] = {}
    for tokens in token_lists:
        for token in tokens:
            name = token.strip()
            if name not in missing and index.lookup(name) is None:
                missing[name] = None
    for name in missing:
        if len(name) < MIN_GROUP_NAME:
            count, first = used_by(name)
            used = f"used by {count} row(s), first at {first}"
            if name.isdigit():
                raise ConfigError(
                    f"group id {name} does not exist ({used})",
                    hint="use the id or name of an existing group",
                )
            raise ConfigError(
                f"group {name!r} does not exist and cannot be created: WaSMS group names need "
                f"at least {MIN_GROUP_NAME} characters ({used})",
                hint="rename it in the source (e.g. 'VIP' → 'VIP Customers'), or create a group "
                "in WaSMS and use its id",
            )
    return tuple(missing)


def resolve(tokens: Sequence[str], index: GroupIndex) -> tuple[int, ...] | None:
    """Sorted ids for the tokens, or None when one of them does not exist yet."""
    ids: set[int] = set()
    for token in tokens:
        gid = index.lookup(token)
        if gid is None:
            return None
        ids.add(gid)
    return tuple(sorted(ids))
