"""A real helper caught while it compiles its BPF programs (a cold start), for
the stop-while-starting tests and their bench (bench/stop_while_starting.py).

The helper runs on a private bus with an empty cache directory, so it builds
its programs in a child (helper/kernel/program_build.py); the kernel headers
come from the shared cache, so the header merge is not waited out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.kernel.program_cache import CACHE_FILE
from chadthrottle.helper.standalone import PrivateSystemBus

# Hang guards, not timing targets: how long the helper may take to reach its
# compile (imports, bus, machine lock) on a loaded machine before the test
# says it never did. The stop's own time is bench/stop_while_starting.py's.
COMPILE_START_GUARD_S = 120.0


@dataclass
class Starting:
    process: subprocess.Popen[bytes]
    log: Path
    cache: Path
    child: int  # the build child's pid


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _is_build(pid: int) -> bool:
    try:
        return b"program_build" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _build_child_of(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[1] == parent and _is_build(int(entry.name)):
                return int(entry.name)
    return None


def alive_build(pid: int) -> bool:
    """The build still runs (a zombie, dead and not yet reaped by init, does not)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z" and _is_build(pid)


def compiler_loaded(pid: int) -> bool:
    """bcc is mapped: the child is in its compile, past its own set-up."""
    try:
        return b"libbcc" in Path(f"/proc/{pid}/maps").read_bytes()
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], guard_s: float) -> bool:
    """Poll condition until it holds (True) or guard_s passed (False): a hang guard."""
    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def spawn_helper(
    bus: PrivateSystemBus, tmp_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The helper with an empty cache and state directory under tmp_path,
    its output in tmp_path/helper.log, in a process group of its own."""
    with open(tmp_path / "helper.log", "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "chadthrottle.helper.main", "--bus-address", bus.address,
             "--state-dir", str(tmp_path / "state"), "--cache-dir", str(tmp_path / "cache")],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip


@contextlib.contextmanager
def helper_compiling(bus: PrivateSystemBus, tmp_path: Path) -> Iterator[Starting]:
    """A helper whose build child runs; killed with its child at the end whatever happened."""
    log = tmp_path / "helper.log"
    environment = {**bus.environment(), "BCC_KERNEL_SOURCE": str(kernel_source_dir())}
    process = spawn_helper(bus, tmp_path, environment)
    child: int | None = None
    try:
        found: list[int] = []

        def compiling() -> bool:
            pid = _build_child_of(process.pid)
            found[:] = [] if pid is None else [pid]
            return bool(found) or process.poll() is not None

        assert wait_until(compiling, COMPILE_START_GUARD_S) and found, (
            f"no build child within {COMPILE_START_GUARD_S:.0f} s (exit {process.poll()}):\n"
            f"{log.read_text()}"
        )
        child = found[0]
        yield Starting(process, log, tmp_path / "cache", child)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if child is not None and alive_build(child):
            os.kill(child, signal.SIGKILL)


def left_behind(starting: Starting) -> list[str]:
    """What a helper stopped mid-compile left that it must not have: a live
    or unreaped build child, a stored program set, a datapath record or journal."""
    found = []
    if alive_build(starting.child):
        found.append("the build child outlived the helper")
    elif proc_stat(starting.child) is not None:
        found.append("the build child was not reaped")
    stored = sorted(p.name for p in starting.cache.iterdir()) if starting.cache.exists() else []
    found += [f"stored {name}" for name in stored if CACHE_FILE in name]
    pid = starting.process.pid
    found += [f"left {path.name}" for path in RUN_DIR.glob(f"*-{pid}-*")]
    return found
