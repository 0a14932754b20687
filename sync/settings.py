"""Flags, environment and defaults → one frozen settings value for a run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sync.errors import ConfigError

DEFAULT_BASE_URL = "https://sys.wasms.net/api/"
Mode = Literal["add", "mirror"]


class Secret:
    """The API secret. Its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Limit:
    """A bound that is either an absolute count (`25`) or a share of a total (`10%`)."""

    value: float
    percent: bool

    @classmethod
    def parse(cls, text: str, *, option: str) -> Limit:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", str(text))
        if not m:
            raise ConfigError(
                f"{option}: {text!r} is not a count or a percentage",
                hint=f"write a count such as `{option} 25` or a share such as `{option} 10%`",
            )
        value, percent = float(m.group(1)), bool(m.group(2))
        if percent and value > 100:
            raise ConfigError(f"{option}: {text!r} is above 100%", hint="use 0% to 100%")
        if not percent and value != int(value):
            raise ConfigError(f"{option}: {text!r} is not a whole number", hint="e.g. 25 or 10%")
        return cls(value, percent)

    def allowed(self, total: int) -> float:
        """How many are allowed out of `total`."""
        return total * self.value / 100 if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}"


def home_dir() -> Path:
    """Where locks and the normalisation cache live (`CONTACT_SYNC_HOME`, else the user cache)."""
    if env := os.environ.get("CONTACT_SYNC_HOME"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "contact-sync"


def default_report_dir() -> Path:
    return Path("reports") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def read_secret() -> Secret:
    """The secret from `WASMS_SECRET` or the file named by `WASMS_SECRET_FILE`."""
    value = os.environ.get("WASMS_SECRET", "").strip()
    path = os.environ.get("WASMS_SECRET_FILE", "").strip()
    if value and path:
        raise ConfigError(
            "both WASMS_SECRET and WASMS_SECRET_FILE are set",
            hint="set only one of them",
        )
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"WASMS_SECRET_FILE: cannot read {path}: {exc.strerror}",
                hint="point WASMS_SECRET_FILE at a readable file that holds the API secret",
            ) from None
        if not value:
            raise ConfigError(f"WASMS_SECRET_FILE: {path} is empty", hint="put the secret in it")
    if not value:
        raise ConfigError(
            "no API secret: set WASMS_SECRET or WASMS_SECRET_FILE",
            hint="export WASMS_SECRET_FILE=~/.wasms-secret (a file readable only by you); "
            "the secret is never accepted on the command line, where `ps` would show it",
        )
    return Secret(value)


def read_base_url() -> str:
    url = os.environ.get("WASMS_BASE_URL", "").strip() or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one plan/apply run needs, validated."""

    sources: tuple[Path, ...] = ()
    mapping: str | None = None
    region: str | None = None
    groups: tuple[str, ...] = ()
    mode: Mode = "add"
    scope_groups: tuple[str, ...] = ()
    max_delete: Limit = field(default_factory=lambda: Limit(10, True))
    max_invalid: Limit = field(default_factory=lambda: Limit(50, True))
    replace_changed: bool = False
    concurrency: int = 16
    rate: float | None = None
    attempts: int = 5
    timeout: float = 30.0
    report_dir: Path | None = None
    plan_path: Path | None = None
    base_url: str = DEFAULT_BASE_URL
    secret: Secret = field(default_factory=lambda: Secret(""))
    home: Path = field(default_factory=home_dir)
    fallback_group: str = "contact-sync"

    def __post_init__(self) -> None:
        if self.mode not in ("add", "mirror"):
            raise ConfigError(f"--mode: {self.mode!r} is not add or mirror", hint="add or mirror")
        if self.scope_groups and self.mode != "mirror":
            raise ConfigError(
                "--scope-group only applies to --mode mirror",
                hint="add --mode mirror, or drop --scope-group",
            )
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1", hint="e.g. --concurrency 16")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("--rate must be above 0", hint="e.g. --rate 20 (requests per second)")
        if self.attempts < 1:
            raise ConfigError("attempts must be at least 1")
