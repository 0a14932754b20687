"""Deterministic generators for the benchmark inputs, cached under `benchmarks/.data/`.

`mixed_csv(rows)` is a contact export as users really send it: half national numbers of the
default region (PK) in the shapes people type (`0301-2345678`, `(0301) 234 5678`, `92301…`), half
international (`+44 7911 123456`, `0044 …`, `+1 (202) …`) over several countries, ~3% invalid and
~5% duplicates of an earlier row in another shape. Every row also knows its intended E.164, so the
remote can be seeded with contacts that overlap the file without parsing anything.

Generation is pure and seeded: the same size and seed always give the same bytes.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
REGION = "PK"
VERSION = 1  # bump when the generator changes: cached files are named after it

_FIRST = ["Ayesha", "Bilal", "Chloe", "Daniel", "Emma", "Farhan", "Grace", "Hamza", "Isla", "Jack"]
_LAST = ["Khan", "Smith", "Müller", "Patel", "Ahmed", "Brown", "Schmidt", "Sharma", "Ali", "Jones"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


# Intended numbers: (country code, national significant number) built from real numbering plans.
def _pk_mobile(rng: random.Random) -> tuple[str, str]:
    return "92", f"3{rng.randint(0, 4)}{rng.randint(0, 9)}{_digits(rng, 7)}"


def _pk_landline(rng: random.Random) -> tuple[str, str]:
    area = rng.choice(["42", "21", "51"])  # Lahore, Karachi, Islamabad: 8-digit subscribers
    return "92", f"{area}{rng.randint(2, 9)}{_digits(rng, 7)}"


def _gb(rng: random.Random) -> tuple[str, str]:
    return "44", f"7{rng.randint(4, 9)}{_digits(rng, 8)}"


def _us(rng: random.Random) -> tuple[str, str]:
    area = rng.choice(["202", "212", "213", "305", "312", "415", "617", "646", "702", "718"])
    exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
    return "1", f"{area}{exchange}{_digits(rng, 4)}"


def _de(rng: random.Random) -> tuple[str, str]:
    return "49", f"15{rng.choice('12579')}{_digits(rng, 8)}"


def _in(rng: random.Random) -> tuple[str, str]:
    return "91", f"{rng.randint(7, 9)}{_digits(rng, 9)}"


def _ae(rng: random.Random) -> tuple[str, str]:
    return "971", f"5{rng.choice('024568')}{_digits(rng, 7)}"


def _sa(rng: random.Random) -> tuple[str, str]:
    return "966", f"5{rng.choice('0345')}{_digits(rng, 7)}"


_FOREIGN: list[Callable[[random.Random], tuple[str, str]]] = [_gb, _us, _de, _in, _ae, _sa]


def _national_shape(rng: random.Random, nsn: str) -> str:
    """A PK number as typed in Pakistan."""
    if nsn.startswith("3"):  # mobile: 03XX XXXXXXX
        prefix, rest = "0" + nsn[:3], nsn[3:]
        return rng.choice(
            [
                f"{prefix}-{rest}",
                f"{prefix}{rest}",
                f"({prefix}) {rest[:3]} {rest[3:]}",
                f"{prefix} {rest}",
                f"{prefix}.{rest[:3]}.{rest[3:]}",
                f"92{nsn}",  # the country code without + (read as international)
            ]
        )
    area, rest = nsn[:2], nsn[2:]
    return rng.choice([f"0{area}-{rest}", f"(0{area}) {rest}", f"0{area}{rest}"])


def _international_shape(rng: random.Random, cc: str, nsn: str) -> str:
    head, tail = nsn[: len(nsn) // 2], nsn[len(nsn) // 2 :]
    shapes = [
        f"+{cc} {head} {tail}",
        f"+{cc}{nsn}",
        f"00{cc} {nsn}",
        f"+{cc}-{head}-{tail}",
    ]
    if cc == "1":
        shapes.append(f"+1 ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}")
    if cc in ("44", "49", "92"):
        shapes.append(f"+{cc} (0) {head} {tail}")
    return rng.choice(shapes)


_INVALID = [
    "12345",
    "0301-23",
    "n/a",
    "call me",
    "+44 123",
    "000000000",
    "+1 555 0100",
    "03",
    "",
    "+92 301 23456789012",
]


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    phone: str  # the cell as typed
    email: str
    intended: str  # the E.164 the generator meant ("" for a deliberately invalid cell)


def mixed_rows(rows: int, seed: int = 1) -> Iterator[Row]:
    """`rows` rows: 50% national PK, 45% international, ~3% invalid, ~5% reformatted repeats."""
    rng = random.Random(seed)
    seen: list[tuple[str, str]] = []
    for i in range(rows):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {i:07d}"
        email = f"user{i}@example.com"
        u = rng.random()
        if u < 0.03:
            yield Row(name, rng.choice(_INVALID), email, "")
            continue
        if u < 0.08 and seen:  # a duplicate of an earlier number, typed differently
            cc, nsn = rng.choice(seen)
        elif rng.random() < 0.5:
            cc, nsn = (_pk_mobile if rng.random() < 0.9 else _pk_landline)(rng)
        else:
            cc, nsn = (rng.choice(_FOREIGN) if rng.random() < 0.85 else _pk_mobile)(rng)
        if len(seen) < 50_000:
            seen.append((cc, nsn))
        elif rng.random() < 0.01:
            seen[rng.randrange(len(seen))] = (cc, nsn)
        national = cc == "92" and rng.random() < 0.9
        phone = _national_shape(rng, nsn) if national else _international_shape(rng, cc, nsn)
        yield Row(name, phone, email, f"+{cc}{nsn}")


def _path(kind: str, rows: int, seed: int, suffix: str) -> Path:
    return DATA_DIR / f"{kind}-v{VERSION}-{rows}-s{seed}{suffix}"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)
    return path


def mixed_csv(rows: int, seed: int = 1) -> Path:
    """The mixed-format CSV (`Name,Phone,Email`), plus `<file>.intended.json` beside it."""
    path = _path("mixed", rows, seed, ".csv")
    intended = path.with_suffix(".intended.json")
    if path.exists() and intended.exists():
        return path
    meant: list[str] = []

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["Name", "Phone", "Email"])
            for r in mixed_rows(rows, seed):
                out.writerow([r.name, r.phone, r.email])
                meant.append(r.intended)

    _write_atomic(path, write)
    _write_atomic(intended, lambda tmp: tmp.write_text(json.dumps(meant), encoding="utf-8"))
    return path


def intended_phones(csv_path: Path) -> list[str]:
    """The intended E.164 of each row of a `mixed_csv` file ("" for invalid cells)."""
    data: list[str] = json.loads(csv_path.with_suffix(".intended.json").read_text("utf-8"))
    return data


def reference_e164(csv_path: Path, region: str = REGION) -> set[str]:
    """The valid E.164 phones of a file by phonenumbers' own answers (cached beside the file)."""
    ref = csv_path.with_suffix(f".reference-{region}.json")
    if ref.exists():
        return set(json.loads(ref.read_text("utf-8")))
    import phonenumbers

    found: set[str] = set()
    with csv_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                n = phonenumbers.parse(row["Phone"], region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(n):
                found.add(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))
    _write_atomic(ref, lambda tmp: tmp.write_text(json.dumps(sorted(found)), encoding="utf-8"))
    return found


def remote_seed(csv_path: Path, count: int, seed: int = 2) -> list[str]:
    """`count` E.164 phones for the remote: half taken from the file, half new (deterministic)."""
    rng = random.Random(seed)
    meant = sorted({p for p in intended_phones(csv_path) if p})
    from_file = rng.sample(meant, min(len(meant), count // 2))
    fresh: set[str] = set()
    taken = set(meant)
    while len(fresh) < count - len(from_file):
        cc, nsn = (_pk_mobile if rng.random() < 0.5 else rng.choice(_FOREIGN))(rng)
        phone = f"+{cc}{nsn}"
        if phone not in taken:
            fresh.add(phone)
    return from_file + sorted(fresh)


def writes_csv(rows: int, seed: int = 3) -> Path:
    """`rows` distinct valid PK mobile numbers in E.164 (`Name,Phone`): every row is a create."""
    path = _path("writes", rows, seed, ".csv")
    if path.exists():
        return path
    import phonenumbers

    rng = random.Random(seed)
    phones: dict[str, None] = {}
    while len(phones) < rows:
        cc, nsn = _pk_mobile(rng)
        phone = f"+{cc}{nsn}"
        if phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            phones[phone] = None

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["Name", "Phone"])
            for i, phone in enumerate(phones):
                out.writerow([f"Bench Contact {i:05d}", phone])

    return _write_atomic(path, write)
