"""tests/support/netns.start_stream ends what it started when a later step
fails. Under load the application's "connected" can come after
wait_for_line's 10 s; the TimeoutError then left the peer's server (in no app
scope, so nothing else ends it) running to its --seconds, past the test, and
its namespace alive past `ip netns del`. This test FAILED so before
2026-12-06 (the server outlived the error)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.requirements import require_root
from tests.support.waiting import eventually


def test_a_stream_that_fails_to_start_leaves_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    started: list[subprocess.Popen[str]] = []
    real_spawn, real_wait = netns.spawn, netns.wait_for_line

    def spawn(argv: list[str], cgroup: Path | None) -> subprocess.Popen[str]:
        started.append(real_spawn(argv, cgroup))
        return started[-1]

    def wait_for_line(process: subprocess.Popen[str], key: str, timeout_s: float = 10.0) -> None:
        if key == "connected":  # as its timeout under load would
            raise TimeoutError(f"no {key!r} from {process.args!r}")
        real_wait(process, key, timeout_s)

    monkeypatch.setattr(netns, "spawn", spawn)
    monkeypatch.setattr(netns, "wait_for_line", wait_for_line)
    with netns.netns_pair() as pair:
        try:
            with pytest.raises(TimeoutError):
                netns.start_stream(pair, 5874, "down", seconds=60)
            assert len(started) == 2, started  # the server, then the application
            alive = [p.pid for p in started if p.poll() is None]
            assert alive == [], f"processes {alive} outlived start_stream's error"
        finally:  # what the old start_stream left: not past this test
            for process in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
                if process.stdout is not None:
                    process.stdout.close()
    assert eventually(lambda: not any(Path(f"/proc/{p.pid}").exists() for p in started), 5)
