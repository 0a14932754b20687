"""Fault injection: what a proxy or a flaky network in front of the real server can do.

A `Faults` rule says, for reads (get/*), writes (create/*, delete/*) or both:
  latency_ms + uniform(0, jitter_ms)   delay before answering
  p429                                  proxy answers 429 + Retry-After, HTML (or proxy JSON) body
  p503, p502                            proxy answers 503/502 with an HTML body; nothing is done
  lost                                  the work IS done, then the answer is lost: the connection
                                        drops (`lost_as="drop"`), a 502 comes back ("502"), or
                                        either at random ("either"); on a read
                                        nothing changes, the answer is just lost; a request the
                                        application refused did no work, so it is answered
`times` caps how many faults a rule injects (then it only adds latency): `Faults(p429=1, times=2)`
refuses the next two requests and lets the rest through. `Chaos` holds the active rules and one
seeded RNG, so a run with the same seed and request order sees the same faults; rules can be
swapped at runtime.

A dropped connection is made by starting the response and raising `AnswerLost`. Over loopback
uvicorn then closes the socket mid-body and an httpx client sees `httpx.RemoteProtocolError`.
In-process, `httpx.ASGITransport` re-raises the app's exception; `AnswerLost` subclasses
`httpx.RemoteProtocolError`, so the client sees the same exception type either way.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx

Scope = Literal["all", "reads", "writes"]
LostAs = Literal["drop", "502", "either"]
Kind = Literal["429", "502", "503", "drop", "lost502"]


class AnswerLost(httpx.RemoteProtocolError):
    """Raised by the app after the work is done, to drop the connection without an answer."""


@dataclass
class Faults:
    """One fault rule; probabilities are per request, rolled in the order 429, 503, 502, lost."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    p429: float = 0.0
    p503: float = 0.0
    p502: float = 0.0
    lost: float = 0.0
    lost_as: LostAs = "drop"
    retry_after: int | None = 1  # seconds in the 429's Retry-After header; None: no header
    json_429: bool = False  # the proxy's own JSON body instead of HTML (still not the envelope)
    scope: Scope = "all"
    times: int | None = None  # inject at most this many faults; None: unlimited

    def applies_to(self, is_write: bool) -> bool:
        return self.scope == "all" or (self.scope == "writes") == is_write


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: wait `delay` seconds, then fault `kind` (None: answer)."""

    delay: float = 0.0
    kind: Kind | None = None
    rule: Faults | None = None


class Chaos:
    """The active fault rules and the seeded RNG that rolls them; safe to change at runtime."""

    def __init__(self, faults: Faults | Iterable[Faults] | None = None, seed: int | None = None):
        self._lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rules: list[Faults] = []
        self.set(faults)

    def set(self, faults: Faults | Iterable[Faults] | None) -> None:
        """Replace the active rules (None or [] turns every fault off)."""
        rules = [faults] if isinstance(faults, Faults) else list(faults or [])
        with self._lock:
            self.rules = rules

    def decide(self, is_write: bool) -> Decision:
        with self._lock:
            delay, kind, chosen = 0.0, None, None
            for rule in self.rules:
                if not rule.applies_to(is_write):
                    continue
                delay += rule.latency_ms / 1000
                if rule.jitter_ms:
                    delay += self.rng.uniform(0, rule.jitter_ms) / 1000
                if kind is None and rule.times != 0:
                    kind = self._roll(rule)
                    if kind is not None:
                        chosen = rule
                        if rule.times is not None:
                            rule.times -= 1
            return Decision(delay, kind, chosen)

    def refund(self, decision: Decision) -> None:
        """Give back a fault that was not applied (a counted `times` rule gets it back)."""
        with self._lock:
            if decision.rule is not None and decision.rule.times is not None:
                decision.rule.times += 1

    def _roll(self, rule: Faults) -> Kind | None:
        u = self.rng.random()
        for p, kind in ((rule.p429, "429"), (rule.p503, "503"), (rule.p502, "502")):
            if u < p:
                return kind  # type: ignore[return-value]
            u -= p
        if u < rule.lost:
            as_drop = rule.lost_as == "drop" or (
                rule.lost_as == "either" and self.rng.random() < 0.5
            )
            return "drop" if as_drop else "lost502"
        return None


_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}


def proxy_page(code: int) -> str:
    """The HTML error page an nginx proxy would send."""
    return _PAGE.format(code=code, reason=REASONS[code])
