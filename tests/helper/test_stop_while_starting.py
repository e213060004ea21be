"""A helper told to stop while it is still starting ends, and cleanly.

A cold start compiles the BPF programs in a child for seconds (1-13 s under
load). Until 2026-12-04 a SIGTERM then waited for the compile and the whole
start: systemd's stop or restart hung, and the test harness SIGKILLed the
helper after 10 s. Now the build child is killed and reaped, nothing is stored
or attached, and the exit is 0 (a clean stop for systemd). A SIGKILLed helper
takes its build child along (PR_SET_PDEATHSIG). Real helper processes on the
session's private bus, each with an empty cache directory (so it compiles);
the kernel headers come from the shared cache, so the header merge (its own
stop point, tens of seconds on a fresh machine) is not waited out here.

What is proved is the stop, not its speed: the build child is frozen
(SIGSTOP) before the stop, so a helper that waited for the compile would wait
for good; the guards below only turn such a hang into a failure that says so.
How long a stop takes is bench/stop_while_starting.py's (docs/benchmarks/
flakes.md): a wall-clock bound here failed once at load 6.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from chadthrottle.helper.errors import StartCancelled
from chadthrottle.helper.kernel import ownership
from chadthrottle.helper.kernel.bcc_env import _own_headers
from chadthrottle.helper.kernel.program_cache import OFFSETS_FILE
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.compiling_helper import (
    COMPILE_START_GUARD_S,
    Starting,
    alive_build,
    compiler_loaded,
    helper_compiling,
    left_behind,
    spawn_helper,
    wait_until,
)

# Hang guards only (see the docstring): a stop measured at 0.06-0.12 s.
EXIT_GUARD_S = 120.0


def _exit_status(process: subprocess.Popen[bytes], log: Path, after: str) -> int:
    try:
        return process.wait(EXIT_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_GUARD_S:.0f} s after {after}:\n{log.read_text()}")


def _assert_stopped_mid_compile(starting: Starting) -> None:
    log = starting.log.read_text()
    assert "stopped while compiling the BPF programs" in log, log  # the stop came mid-compile
    assert left_behind(starting) == [], log


@pytest.mark.parametrize("send", [os.kill, os.killpg], ids=["helper", "whole-group"])
def test_sigterm_mid_compile_kills_the_build_and_exits_clean(
    private_bus: PrivateSystemBus, tmp_path: Path, send: Callable[[int, int], None]
) -> None:
    """To the helper alone, or to every process of the unit as systemd sends
    it (the build child holds it, and the helper ends the child:
    tests/helper/kernel/test_build_child_signals.py). To the helper alone,
    the build child is frozen first: its compile can never end, so the
    helper's exit shows it did not wait for the compile (the whole group's
    is left running: a frozen child would also hold the group's SIGTERM)."""
    with helper_compiling(private_bus, tmp_path) as starting:
        if send is os.kill:
            os.kill(starting.child, signal.SIGSTOP)
        send(starting.process.pid, signal.SIGTERM)
        status = _exit_status(starting.process, starting.log, "a SIGTERM mid-compile")
        assert status == 0, starting.log.read_text()
        _assert_stopped_mid_compile(starting)


def test_sigterm_while_merging_the_headers_leaves_no_half_tree(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    """Where the distribution splits the kernel headers, a cold cache first
    merges them (seconds): a stop there ends it too, the half-made tree removed."""
    if _own_headers() is not None:
        pytest.skip("the running kernel has its own header tree: nothing is merged")
    log, cache = tmp_path / "helper.log", tmp_path / "cache"
    environment = {k: v for k, v in private_bus.environment().items() if k != "BCC_KERNEL_SOURCE"}
    process = spawn_helper(private_bus, tmp_path, environment)
    try:

        def merging() -> bool:
            return "merging" in log.read_text() or process.poll() is not None

        assert wait_until(merging, COMPILE_START_GUARD_S) and process.poll() is None, (
            log.read_text()
        )
        process.send_signal(signal.SIGTERM)
        status = _exit_status(process, log, "a SIGTERM mid-merge")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert "stopped while merging the kernel headers" in log.read_text(), log.read_text()
    assert status == 0, log.read_text()
    # the kernel's struct offsets, stored whole before the merge, may stay
    left = [path.name for path in cache.iterdir() if path.name != OFFSETS_FILE]
    assert left == [], f"a half-made header tree was left: {left}"


def test_sigkill_mid_compile_takes_the_build_child_along(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    """The child is stopped (SIGSTOP) first, so only the kernel's parent-death
    signal can end it: without it, it would wait there for good."""
    with helper_compiling(private_bus, tmp_path) as starting:
        assert wait_until(lambda: compiler_loaded(starting.child), COMPILE_START_GUARD_S)
        os.kill(starting.child, signal.SIGSTOP)
        starting.process.kill()
        starting.process.wait()
        assert wait_until(lambda: not alive_build(starting.child), EXIT_GUARD_S), (
            f"the build child still compiles {EXIT_GUARD_S:.0f} s after its helper was SIGKILLed"
        )


def test_a_start_waiting_for_a_held_lock_gives_up_when_told_to_stop(tmp_path: Path) -> None:
    """The wait for the machine lock (up to 120 s while a benchmark holds it) is
    a stop point too; a lock file of this test's own, held as a benchmark would.
    Given up on the stop (StartCancelled), not at the wait's end
    (BackendUnavailable), which is far off."""
    lock_path = tmp_path / "datapath.lock"
    holder = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    stopping = threading.Event()
    timer = threading.Timer(0.2, stopping.set)
    timer.start()
    try:
        with pytest.raises(StartCancelled, match="waiting for the machine lock"):
            ownership._lock(lock_path, fcntl.LOCK_SH, EXIT_GUARD_S, stopping)
    finally:
        timer.cancel()
        os.close(holder)
