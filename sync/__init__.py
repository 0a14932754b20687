"""contact-sync: keep a WaSMS.Net contact list in step with spreadsheets.

The library API (what the CLI and an orchestrator call) is re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from sync.engine import RunResult, apply, plan  # the library API

__all__ = ["RunResult", "__version__", "apply", "plan"]
