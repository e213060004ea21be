"""Deleting a test namespace (tests/support/netns.py netns_pair, extra_link)
ends what still runs in it. A process left there (a sink whose test failed
before its stop, started in no app scope) kept the namespace alive, unnamed,
past `ip netns del`, and ran on to its --seconds: no check saw it. This test
FAILED so before 2026-12-06."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.support.netns import extra_link, netns_pair, nsenter_argv
from tests.support.requirements import require_root
from tests.support.waiting import eventually


def test_a_process_left_in_a_test_namespace_ends_with_it() -> None:
    require_root()
    left: list[subprocess.Popen[bytes]] = []
    try:
        with netns_pair() as pair:
            left.append(subprocess.Popen(nsenter_argv(pair.peer_ns, ["sleep", "60"])))
            with extra_link(pair.host_ns) as far:  # a namespace extra_link makes
                left.append(subprocess.Popen(nsenter_argv(far.peer_ns, ["sleep", "60"])))
                assert eventually(lambda: len(_pids(far.peer_ns)) == 1, 5)
            assert eventually(lambda: left[1].poll() is not None, 1), (
                "extra_link's namespace kept it"
            )
        assert eventually(lambda: left[0].poll() is not None, 1), "netns_pair's namespace kept it"
    finally:
        for process in left:  # what the old clean-up left: not past this test
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def _pids(netns: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return listed.stdout.split() if Path(f"/run/netns/{netns}").exists() else []
