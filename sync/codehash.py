"""A digest of the source of the modules a cached answer came from.

The persistent caches (normalised phones, the ingest snapshot) are keyed by it as well as by
version numbers: a fix to a rule then invalidates what the old rule computed, even in an
editable install or a release that forgot to bump a schema number. Reading a few modules'
bytes costs well under a millisecond, once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from functools import cache
from pathlib import Path


@cache
def code_digest(*modules: str) -> str:
    """SHA-256 (16 hex digits) over the named modules' source files; a module whose source
    cannot be read contributes its name only."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        h.update(name.encode() + b"\0")
        if spec is not None and spec.origin is not None:
            with contextlib.suppress(OSError):
                h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]
