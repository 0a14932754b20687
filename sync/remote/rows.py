"""Rows of the listings → typed models. Names are HTML-unescaped (the server stores them escaped);
contact group ids arrive as strings and become ints (empty strings are dropped)."""

from __future__ import annotations

import html
from typing import Any

from sync.errors import RemoteError
from sync.models import OptOut, RemoteContact, RemoteGroup


def _bad(endpoint: str, what: str, row: Any) -> RemoteError:
    return RemoteError(
        f"{endpoint}: unexpected {what} in row {str(row)[:200]!r}", endpoint=endpoint
    )


def _int(value: Any, endpoint: str, row: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _bad(endpoint, "id", row)


def _text(value: Any) -> str:
    return html.unescape(value) if isinstance(value, str) else "" if value is None else str(value)


def _mapping(row: Any, endpoint: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _bad(endpoint, "row type", row)
    return row


def row_id(row: Any) -> int:
    """The id of a raw row, for de-duplication (rows are validated by the parsers below)."""
    value = row.get("id") if isinstance(row, dict) else None
    return _int(value, "listing", row)


def group_ids(value: Any, endpoint: str, row: Any) -> tuple[int, ...]:
    """`["1", "9"]`, `"1,9"` or `[1, 9]` → `(1, 9)`; empty strings are ignored."""
    items = value.split(",") if isinstance(value, str) else value
    if items is None:
        return ()
    if not isinstance(items, list | tuple):
        raise _bad(endpoint, "groups", row)
    out = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        out.append(_int(item.strip() if isinstance(item, str) else item, endpoint, row))
    return tuple(out)


def contact(row: Any) -> RemoteContact:
    r = _mapping(row, "get/contacts")
    return RemoteContact(
        id=_int(r.get("id"), "get/contacts", row),
        phone=_text(r.get("phone")).strip(),
        name=_text(r.get("name")),
        groups=group_ids(r.get("groups"), "get/contacts", row),
    )


def group(row: Any) -> RemoteGroup:
    r = _mapping(row, "get/groups")
    return RemoteGroup(id=_int(r.get("id"), "get/groups", row), name=_text(r.get("name")))


def optout(row: Any) -> OptOut:
    r = _mapping(row, "get/unsubscribed")
    created = r.get("created")
    return OptOut(
        id=_int(r.get("id"), "get/unsubscribed", row),
        phone=_text(r.get("phone")).strip(),
        created=_int(created, "get/unsubscribed", row) if created is not None else 0,
    )
