"""The client's settings and the result of one write.

`ClientSettings` validates itself: a bad value is a `ConfigError` before anything is sent. Plain
`http://` is refused except for loopback hosts (the emulator), so the secret never crosses a network
in clear text; TLS verification is always on and cannot be configured off.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import httpx

from sync.errors import ConfigError

DEFAULT_BASE_URL = "https://sys.wasms.net/api/"


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """The base URL with a trailing slash; `ConfigError` if it is unusable or insecure."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"invalid API base URL {base_url!r}: {exc}") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigError(
            f"invalid API base URL {base_url!r}",
            hint="give a full URL such as https://sys.wasms.net/api/",
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise ConfigError(
            f"refusing plain http:// for {url.host}: the API secret would travel unencrypted",
            hint="use https://; plain http:// is for a loopback emulator only (127.0.0.1, ::1)",
        )
    if url.query or url.fragment or url.userinfo:
        raise ConfigError(
            "the API base URL must not carry a query, fragment or credentials",
            hint="pass the secret through the secret setting (WASMS_SECRET)",
        )
    return base_url if base_url.endswith("/") else base_url + "/"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach the API and how hard to push it. `secret` is left out of the repr."""

    base_url: str = DEFAULT_BASE_URL
    secret: str = field(default="", repr=False)
    timeout: float = 30.0
    attempts: int = 5  # total tries for a transient error
    backoff_initial: float = 0.5  # exponential backoff with full jitter...
    backoff_max: float = 30.0  # ...capped here
    concurrency: int = 16  # max requests in flight
    rate: float | None = None  # max requests per second (None: unbounded)
    # rows per listing request (the first asks for twice as many); the API sets no maximum.
    # 100k contacts at 100 ms of latency: 103 requests, 11.5-11.8 s at 1000; 20, 2.9-3.3 s so
    page_size: int = 5000
    retry_after_max: float = 120.0  # a longer Retry-After gives up instead of waiting

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_base_url(self.base_url))
        if not self.secret or self.secret != self.secret.strip():
            raise ConfigError(
                "the API secret is empty or has surrounding spaces",
                hint="set WASMS_SECRET to the key from the WaSMS dashboard (Tools → API Keys)",
            )
        checks = {
            "timeout": self.timeout > 0,
            "attempts": self.attempts >= 1,
            "backoff_initial": self.backoff_initial >= 0,
            "backoff_max": self.backoff_max >= self.backoff_initial,
            "concurrency": self.concurrency >= 1,
            "rate": self.rate is None or self.rate > 0,
            "page_size": self.page_size >= 2,
            "retry_after_max": self.retry_after_max >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"invalid client setting {name}={getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write took.

    `attempts` counts the HTTP requests the operation sent (retries and checks included).
    `recovered` is True when an earlier attempt failed ambiguously (its answer was lost) and a
    later step showed the write had been stored: the contact's phone "already exists", or the
    group now appears in get/groups.
    """

    attempts: int
    recovered: bool = False
