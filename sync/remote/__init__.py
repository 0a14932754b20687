"""The remote: an async client of the WaSMS.Net contacts API.

client.py    WasmsClient: endpoints, envelope, retries, write ambiguity, secrets
config.py    ClientSettings (validated; http:// only for loopback) and WriteResult
envelope.py  an answer → its data, or the sync.errors exception it maps to
paging.py    complete listings despite the server's pagination off-by-one
retry.py     the tenacity policy: what is retried, backoff, Retry-After, retry logs
limits.py    the sliding-window requests-per-second limiter
rows.py      listing rows → RemoteContact / RemoteGroup / OptOut
"""

from __future__ import annotations

from .client import WasmsClient
from .config import DEFAULT_BASE_URL, ClientSettings, WriteResult
from .limits import RateLimiter

__all__ = ["DEFAULT_BASE_URL", "ClientSettings", "RateLimiter", "WasmsClient", "WriteResult"]
