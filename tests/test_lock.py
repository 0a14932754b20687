"""One run per account: a held lock refuses a second run; a dead holder's lock is stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sync.errors import ConfigError, LockedError
from sync.lock import account_lock, lock_path


def test_second_holder_is_told_who_holds_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "http://127.0.0.1:1/api/", "s3cret")
    assert "s3cret" not in str(path)
    with (
        account_lock(path, run_id="first"),
        pytest.raises(LockedError) as err,
        account_lock(path, run_id="second"),
    ):
        pass
    assert f"pid {os.getpid()}" in str(err.value)
    assert err.value.exit_code == 3
    with account_lock(path, run_id="third") as info:  # released after the first block
        assert info.stale_holder is None


def test_lock_of_a_killed_process_is_stale(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "http://127.0.0.1:1/api/", "s3cret")
    code = (
        "import sys, time; from pathlib import Path; from sync.lock import account_lock\n"
        f"with account_lock(Path({str(path)!r}), run_id='doomed'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"pid {proc.pid}"), account_lock(path, run_id="x"):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    with account_lock(path, run_id="next") as info:
        assert info.stale_holder is not None and info.stale_holder["pid"] == proc.pid


def test_a_lock_that_cannot_be_made_refuses_the_run(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the home directory should be")
    path = lock_path(tmp_path / "home", "https://sys.wasms.net/api/", "s3cret")
    with (
        pytest.raises(ConfigError, match="cannot create the lock file") as info,
        account_lock(path, run_id="r1"),
    ):
        pytest.fail("ran without the lock")
    assert info.value.exit_code == 2
    assert "CONTACT_SYNC_HOME" in str(info.value.hint)
