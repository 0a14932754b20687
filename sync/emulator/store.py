"""The emulator's data: accounts, API keys, contacts, groups and opt-outs, plus request counters.

Rows are kept the way the real server keeps them: inputs trimmed and HTML-escaped, phones in E.164,
a contact's groups as one comma-joined string ("1,9"). Contacts of an account live in a list in id
order, so an id-descending page is a cheap slice (100k contacts list in milliseconds), and a phone
counter answers "already exists?" in O(1).

Seeding (`add_*`) is trusted: it stores what it is given without the endpoint's validations, so a
test can build remote states the API would refuse (duplicate phones, contacts in deleted groups).

Every method takes the store's lock, so a test thread may seed or inspect while uvicorn serves from
its own thread. With `path` set, the whole state is written atomically (temp file + rename) after
every change.
"""

from __future__ import annotations

import html
import json
import secrets as _secrets
import tempfile
import threading
import time
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PERMISSIONS: tuple[str, ...] = (
    "create_contact",
    "create_group",
    "delete_contact",
    "delete_group",
    "get_contacts",
    "get_groups",
    "get_unsubscribed",
    "delete_unsubscribed",
)
WRITE_ENDPOINTS = frozenset(
    {"create/contact", "create/group", "delete/contact", "delete/group", "delete/unsubscribed"}
)
_PHP_WHITESPACE = " \t\n\r\0\x0b"  # what PHP's trim() strips
STATE_VERSION = 1


class StateError(ValueError):
    """The --state file cannot be read as emulator state."""


def clean(value: str | None) -> str:
    """Trim (PHP's character set) and HTML-escape a parameter, as the server does before storing."""
    return html.escape((value or "").strip(_PHP_WHITESPACE), quote=True)


@dataclass(slots=True)
class Contact:
    id: int
    phone: str
    name: str
    groups: str  # "1,9", as stored by the server

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "groups": self.groups.split(",") if self.groups else [],
            "phone": self.phone,
            "name": self.name,
        }


@dataclass(slots=True)
class Group:
    id: int
    name: str

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(slots=True)
class OptOut:
    id: int
    phone: str
    created: int  # unix seconds

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "phone": self.phone, "created": self.created}


@dataclass(slots=True)
class ApiKey:
    secret: str
    uid: int
    permissions: frozenset[str]


@dataclass
class Account:
    """One user's data. Lists are in listing order ascending; pages read them from the end."""

    uid: int
    country: str = "PK"
    package: bool = True
    quota: int | None = None  # contact quota; None is unlimited
    contacts: list[Contact] = field(default_factory=list)  # by id
    groups: list[Group] = field(default_factory=list)  # by id
    optouts: list[OptOut] = field(default_factory=list)  # by (created, id)
    phones: Counter[str] = field(default_factory=Counter)

    def has_group(self, group_id: str) -> bool:
        gid = group_id.strip(_PHP_WHITESPACE)
        if not gid.isascii() or not gid.isdigit():
            return False
        return _find(self.groups, int(gid)) is not None

    def remove_contact(self, contact_id: int) -> bool:
        i = _find(self.contacts, contact_id)
        if i is None:
            return False
        row = self.contacts.pop(i)
        self.phones[row.phone] -= 1
        if self.phones[row.phone] <= 0:
            del self.phones[row.phone]
        return True

    def remove_group(self, group_id: int) -> bool:
        i = _find(self.groups, group_id)
        if i is None:
            return False
        del self.groups[i]  # contacts keep the id in their group lists, like the server
        return True

    def remove_optout(self, optout_id: int) -> bool:
        for i, row in enumerate(self.optouts):
            if row.id == optout_id:
                del self.optouts[i]
                return True
        return False


def _find(rows: Sequence[Contact] | Sequence[Group], row_id: int) -> int | None:
    i = bisect_left(rows, row_id, key=lambda r: r.id)
    return i if i < len(rows) and rows[i].id == row_id else None


@dataclass
class Stats:
    """Counters for tests: requests received per endpoint, changes stored, faults injected."""

    requests: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def writes(self) -> int:
        """Requests received on create/* and delete/* endpoints (whether or not they changed)."""
        return sum(n for name, n in self.requests.items() if name in WRITE_ENDPOINTS)

    def reset(self) -> None:
        self.requests.clear()
        self.changes.clear()
        self.faults.clear()

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "requests": dict(self.requests),
            "changes": dict(self.changes),
            "faults": dict(self.faults),
        }


class Store:
    """All emulator state. A fresh store has one account (uid 1) and one key with every permission.

    Seeding and inspection default to that primary account; pass `account=` for another one.
    """

    def __init__(
        self,
        country: str = "PK",
        *,
        package: bool = True,
        quota: int | None = None,
        secret: str | None = None,
        path: Path | str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.stats = Stats()
        self.path: Path | None = None  # set once the primary account exists, then saved
        self.accounts: dict[int, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        self._next = {"account": 1, "contact": 1, "group": 1, "optout": 1}
        self.account = self.add_account(country, package=package, quota=quota)
        self.secret = self.add_key(secret)
        self.path = Path(path) if path is not None else None
        self.save()

    # -- accounts and keys -------------------------------------------------------------------

    def add_account(
        self, country: str = "PK", *, package: bool = True, quota: int | None = None
    ) -> Account:
        with self.lock:
            account = Account(self._new_id("account"), country.upper(), package, quota)
            self.accounts[account.uid] = account
            self._changed()
            return account

    def add_key(
        self,
        secret: str | None = None,
        permissions: Iterable[str] = PERMISSIONS,
        *,
        account: Account | None = None,
    ) -> str:
        """Add an API key (generated when `secret` is None) and return its secret."""
        perms = frozenset(permissions)
        if unknown := perms - set(PERMISSIONS):
            raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
        secret = secret or _secrets.token_hex(20)
        with self.lock:
            uid = (account or self.account).uid
            self.keys[secret] = ApiKey(secret, uid, perms)
            self._changed()
            return secret

    def key(self, secret: str) -> ApiKey | None:
        with self.lock:
            return self.keys.get(secret)

    # -- seeding (trusted: no endpoint validation) -----------------------------------------

    def add_group(self, name: str, *, account: Account | None = None) -> int:
        with self.lock:
            row = Group(self._new_id("group"), clean(name))
            (account or self.account).groups.append(row)
            self._changed()
            return row.id

    def add_contact(
        self,
        phone: str,
        name: str,
        groups: Iterable[int | str] = (),
        *,
        account: Account | None = None,
    ) -> int:
        """Store a contact as given (`phone` in E.164); duplicates, unknown groups allowed."""
        with self.lock:
            acc = account or self.account
            row = Contact(self._new_id("contact"), phone.strip(), clean(name), _join(groups))
            acc.contacts.append(row)
            acc.phones[row.phone] += 1
            self._changed()
            return row.id

    def add_optout(
        self, phone: str, created: int | None = None, *, account: Account | None = None
    ) -> int:
        """Seed an opted-out phone (listed by get/unsubscribed); `created` defaults to now."""
        with self.lock:
            when = int(time.time()) if created is None else created
            row = OptOut(self._new_id("optout"), phone.strip(), when)
            insort((account or self.account).optouts, row, key=lambda r: (r.created, r.id))
            self._changed()
            return row.id

    # -- inspection (API shapes, newest first, like a listing with a huge limit) -----------

    def contacts(self, *, account: Account | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [c.as_api() for c in reversed((account or self.account).contacts)]

    def groups(self, *, account: Account | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [g.as_api() for g in reversed((account or self.account).groups)]

    def optouts(self, *, account: Account | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [o.as_api() for o in reversed((account or self.account).optouts)]

    # -- changes made by the endpoints (already validated) ---------------------------------

    def create_contact(self, account: Account, phone: str, name: str, groups: str) -> None:
        with self.lock:
            account.contacts.append(Contact(self._new_id("contact"), phone, name, groups))
            account.phones[phone] += 1
            self._changed("create/contact")

    def create_group(self, account: Account, name: str) -> None:
        with self.lock:
            account.groups.append(Group(self._new_id("group"), name))
            self._changed("create/group")

    def delete(self, account: Account, endpoint: str, row_id: int) -> None:
        """Run delete/<what> for `row_id`; nothing happens if the account has no such row."""
        remove = {
            "delete/contact": account.remove_contact,
            "delete/group": account.remove_group,
            "delete/unsubscribed": account.remove_optout,
        }[endpoint]
        with self.lock:
            if remove(row_id):
                self._changed(endpoint)

    # -- persistence -----------------------------------------------------------------------

    def _new_id(self, table: str) -> int:
        self._next[table] += 1
        return self._next[table] - 1

    def _changed(self, endpoint: str | None = None) -> None:
        if endpoint:
            self.stats.changes[endpoint] += 1
        self.save()

    def save(self) -> None:
        """Write the state to `path` atomically (no-op without a path)."""
        if self.path is None:
            return
        with self.lock:
            text = json.dumps(self._dump(), ensure_ascii=False, separators=(",", ":"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=self.path.parent, prefix=".emulator-", delete=False
            ) as tmp:
                tmp.write(text)
            Path(tmp.name).replace(self.path)

    def _dump(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "next": self._next,
            "primary": {"uid": self.account.uid, "secret": self.secret},
            "keys": [
                {"secret": k.secret, "uid": k.uid, "permissions": sorted(k.permissions)}
                for k in self.keys.values()
            ],
            "accounts": [
                {
                    "uid": a.uid,
                    "country": a.country,
                    "package": a.package,
                    "quota": a.quota,
                    "contacts": [[c.id, c.phone, c.name, c.groups] for c in a.contacts],
                    "groups": [[g.id, g.name] for g in a.groups],
                    "optouts": [[o.id, o.phone, o.created] for o in a.optouts],
                }
                for a in self.accounts.values()
            ],
        }

    @classmethod
    def load(cls, path: Path | str) -> Store:
        """Read a state file written by `save`; later changes are saved back to it."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("version") != STATE_VERSION:
                raise StateError(f"{path}: unsupported state version {raw.get('version')!r}")
            store = cls.__new__(cls)
            store._restore(raw, path)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            if isinstance(exc, StateError):
                raise
            raise StateError(f"{path}: not an emulator state file ({exc})") from exc
        return store

    def _restore(self, raw: dict[str, Any], path: Path) -> None:
        self.lock = threading.RLock()
        self.stats = Stats()
        self.path = path
        self._next = {k: int(v) for k, v in raw["next"].items()}
        self.accounts = {}
        for a in raw["accounts"]:
            acc = Account(int(a["uid"]), str(a["country"]), bool(a["package"]), a["quota"])
            acc.contacts = [Contact(int(i), p, n, g) for i, p, n, g in a["contacts"]]
            acc.groups = [Group(int(i), n) for i, n in a["groups"]]
            acc.optouts = [OptOut(int(i), p, int(c)) for i, p, c in a["optouts"]]
            acc.phones = Counter(c.phone for c in acc.contacts)
            self.accounts[acc.uid] = acc
        self.keys = {
            k["secret"]: ApiKey(k["secret"], int(k["uid"]), frozenset(k["permissions"]))
            for k in raw["keys"]
        }
        self.account = self.accounts[int(raw["primary"]["uid"])]
        self.secret = str(raw["primary"]["secret"])


def _join(groups: Iterable[int | str]) -> str:
    return ",".join(str(g).strip() for g in groups)
