"""What each endpoint answers, as /work/shared/wasms-api.md describes the real server.

`dispatch(store, endpoint, params)` is pure application logic: parameters in, envelope out, no HTTP.
It runs the checks every endpoint makes (secret, endpoint, permission) and then the endpoint's own
checks in the page's order, under the store's lock so that check-then-insert is atomic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from sync.emulator.store import Account, Store, clean

_INT = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Reply:
    """The JSON envelope every application answer carries (always with HTTP 200)."""

    status: int
    message: str
    data: Any = False

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "data": self.data}


INVALID = Reply(400, "Invalid Parameters!")
Handler = Callable[[Store, Account, Mapping[str, str]], Reply]


def dispatch(store: Store, endpoint: str, params: Mapping[str, str]) -> Reply:
    """Answer one API call; `params` merges the query string and the form body."""
    secret = params.get("secret", "").strip()
    if not secret:
        return INVALID
    with store.lock:
        key = store.key(secret)
        if key is None:
            return Reply(401, "Invalid API secret supplied!")
        handler = ENDPOINTS.get(endpoint)
        if handler is None:
            return Reply(400, "Invalid API Endpoint!")
        if endpoint.replace("/", "_") not in key.permissions:
            return Reply(403, "This API key doesn't have permission to use this endpoint!")
        return handler(store, store.accounts[key.uid], params)


def create_contact(store: Store, account: Account, params: Mapping[str, str]) -> Reply:
    name, phone, groups = (clean(params.get(k)) for k in ("name", "phone", "groups"))
    if not (name and phone and groups):
        return INVALID
    if not account.package:
        return Reply(400, "Account is not subscribed to any premium package!")
    if account.quota is not None and len(account.contacts) >= account.quota:
        return Reply(400, "You have reached the maximum allowed contacts!")
    if len(name.encode("utf-8")) < 4:
        return Reply(400, "Contact name is too short!")
    e164 = _e164(phone, account.country)
    if e164 is None:
        return Reply(400, "Invalid phone number!")
    ids = groups.split(",")
    for gid in ids:
        if not account.has_group(gid):
            return Reply(400, f"Group #{gid} is invalid!")
    if account.phones.get(e164):
        return Reply(400, "Phone number already exist in your contact book!")
    store.create_contact(account, e164, name, ",".join(g.strip() for g in ids))
    return Reply(200, "Contact has been created!")


def _e164(phone: str, country: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def create_group(store: Store, account: Account, params: Mapping[str, str]) -> Reply:
    name = clean(params.get("name"))
    if not name:
        return INVALID
    if len(name) < 4:
        return Reply(400, "Group name is too short!")
    store.create_group(account, name)
    return Reply(200, "Contact group has been created!")


def _lister(attr: str, message: str) -> Handler:
    """get/<what>: the page's off-by-one pagination over rows kept in ascending listing order."""

    def handler(store: Store, account: Account, params: Mapping[str, str]) -> Reply:
        limit, page = _int_param(params, "limit", 10), _int_param(params, "page", 1)
        if limit is None or page is None:
            return INVALID
        rows = getattr(account, attr)
        offset = 0 if page < 2 else page * limit
        high = len(rows) - offset  # newest first: descending index i is ascending len-1-i
        low = max(0, high - limit)
        data = [r.as_api() for r in reversed(rows[low:high])] if high > 0 else []
        return Reply(200, message, data)

    return handler


def _int_param(params: Mapping[str, str], name: str, default: int) -> int | None:
    """The value as a non-negative int, the default when absent, None when not an integer."""
    if name not in params:
        return default
    value = clean(params[name])
    return int(value) if _INT.fullmatch(value) else None


def _deleter(endpoint: str, message: str) -> Handler:
    """delete/<what>: answers 200 whether or not a row of this account was removed."""

    def handler(store: Store, account: Account, params: Mapping[str, str]) -> Reply:
        row_id = clean(params.get("id"))
        if not _INT.fullmatch(row_id):
            return INVALID
        store.delete(account, endpoint, int(row_id))
        return Reply(200, message)

    return handler


ENDPOINTS: dict[str, Handler] = {
    "create/contact": create_contact,
    "create/group": create_group,
    "get/contacts": _lister("contacts", "Saved Contacts"),
    "get/groups": _lister("groups", "Contact Groups"),
    "get/unsubscribed": _lister("optouts", "Unsubscribed Contacts"),
    "delete/contact": _deleter("delete/contact", "Contact has been deleted!"),
    "delete/group": _deleter("delete/group", "Contact group has been deleted!"),
    "delete/unsubscribed": _deleter(
        "delete/unsubscribed", "Unsubscribed contact has been deleted!"
    ),
}
