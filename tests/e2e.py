"""End-to-end helpers: an emulator on a loopback port and the real command line against it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sync.cli import cli
from sync.emulator import EmulatorApp, Store, create_app, run_in_thread

SECRET = "e2e-Secret-9f8e7d6c5b4a"  # distinctive, so a leak is easy to find


@dataclass
class Remote:
    app: EmulatorApp
    base_url: str
    tmp: Path
    outputs: list[str] = field(default_factory=list)  # everything printed, for the leak check

    @property
    def store(self) -> Store:
        return self.app.store

    def env(self, **extra: str | None) -> dict[str, str | None]:
        """The run's environment; a variable given as None is unset."""
        return {
            "WASMS_SECRET": SECRET,
            "WASMS_BASE_URL": self.base_url,
            "CONTACT_SYNC_HOME": str(self.tmp / "home"),
            **extra,
        }

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """`contact-sync ARGS` in-process (click's runner), JSON logs on stderr."""
        result = CliRunner().invoke(cli, list(args), env=env or self.env(), catch_exceptions=False)
        self.outputs += [result.stdout, result.stderr]
        return result

    @contextlib.contextmanager
    def spawn(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """`python -m sync ARGS` as a separate process, as cron would run it; killed if still
        running when the block ends, its output kept for the leak check."""
        merged = {**os.environ, **self.env()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync", *args],
            env={k: v for k, v in merged.items() if v is not None},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            stdout, stderr = proc.communicate()
            self.outputs += [stdout, stderr]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def phones(self) -> dict[str, dict[str, Any]]:
        return {c["phone"]: c for c in self.store.contacts()}

    def csv(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path


def report(path: Path) -> dict[str, Any]:
    return json.loads((path / "report.json").read_text(encoding="utf-8"))


def records(path: Path) -> dict[str, dict[str, Any]]:
    """report.json records keyed by E.164 phone (invalid rows by raw phone)."""
    out: dict[str, dict[str, Any]] = {}
    for r in report(path)["records"]:
        out.setdefault(r["phone"] or r["raw_phone"], r)
    return out


def assert_no_secret(outputs: list[str], root: Path) -> None:
    """The secret appears in no output and in no file a run wrote (reports, plans, locks)."""
    for text in outputs:
        assert SECRET not in text
    for path in root.rglob("*"):
        if path.is_file() and path.name != "secret":  # the WASMS_SECRET_FILE itself
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """An emulator on a loopback port; runs start in `tmp_path` (so a default `reports/` lands
    there too); after the test, every output and file is searched for the secret."""
    monkeypatch.chdir(tmp_path)
    app = create_app(Store(country="PK", secret=SECRET))
    with run_in_thread(app) as base_url:
        r = Remote(app, base_url, tmp_path)
        yield r
    assert_no_secret(r.outputs, tmp_path)
