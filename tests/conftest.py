"""Shared fixtures. An autouse fixture keeps every test away from real endpoints and real config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from sync import logs


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in ("WASMS_SECRET", "WASMS_SECRET_FILE", "WASMS_BASE_URL", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONTACT_SYNC_HOME", str(tmp_path / "home"))
    yield
    logs._secrets.clear()


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Log assertions must not depend on a configuration another test left behind."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)
