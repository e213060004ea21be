"""A helper's start that waits for the machine lock says so, naming who holds
it: a test's or benchmark's holding_machine_lock() held a start for its whole
run, and all anyone saw was a start that took a minute (gui33's 81 s restart,
2026-12-07, could not be told from a compile afterwards). Real flock, held by
another process, on a lock file of the test's own (the machine's is left alone)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import ownership

from tests.support.requirements import require_root

HOLDER = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "print('held', flush=True)\n"
    "sys.stdin.readline()\n"
)


def _records(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


def test_a_wait_for_the_machine_lock_is_logged_with_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_root()  # the lock's directory is /run/chadthrottle
    lock_file = tmp_path / "datapath.lock"
    monkeypatch.setattr(ownership, "LOCK_FILE", lock_file)
    caplog.set_level(logging.INFO, logger="chadthrottle.kernel.ownership")
    # named in the script's name: the log keeps a command's first 200 characters,
    # and CI's pytest paths pushed a last argument past them
    script = tmp_path / "machine-lock-holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), str(lock_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        taken: list[int] = []
        waiting = threading.Thread(target=lambda: taken.append(ownership.acquire_shared(30.0)))
        waiting.start()
        deadline = time.monotonic() + 20
        while not _records(caplog, "waiting for") and time.monotonic() < deadline:
            time.sleep(0.01)
        said = _records(caplog, "waiting for")
        assert said, "the wait was not logged"
        assert f"pid {holder.pid} (" in said[0] and "machine-lock-holder" in said[0], said[0]
        assert "write" in said[0], said[0]  # held exclusively
        assert not taken
        holder.stdin.write("\n")
        holder.stdin.flush()
        waiting.join(30)
        assert taken, "the shared lock was not taken once the holder let go"
        os.close(taken[0])
        assert _records(caplog, "took "), "the end of the wait was not logged"
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_taken_at_once_logs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_root()
    monkeypatch.setattr(ownership, "LOCK_FILE", tmp_path / "datapath.lock")
    caplog.set_level(logging.INFO, logger="chadthrottle.kernel.ownership")
    os.close(ownership.acquire_shared(5.0))
    assert not _records(caplog, "waiting for") and not _records(caplog, "took ")
