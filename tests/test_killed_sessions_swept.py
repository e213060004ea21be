"""A test session killed before its exit (SIGKILL skips every clean-up) left
its app-scope cgroup behind (seen 2026-12-05: an engineer's killed run's
chadthrottle-test-*.slice outlived every later session). The next session
that makes an app scope removes such slices, and only such slices."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from tests.support import own_names
from tests.support.netns import sweep_killed_sessions_scopes
from tests.support.requirements import require


@contextlib.contextmanager
def _slices(root: Path, pids: dict[str, int]) -> Iterator[dict[str, Path]]:
    """A test slice per name, with one scope naming that pid; removed after."""
    made = {}
    try:
        for name, pid in pids.items():
            slice_ = root / f"{own_names.TEST_NAME_PREFIX}{secrets.token_hex(3)}.slice"
            (slice_ / f"app-cttest-org.chadthrottle.Swept{name}-{pid}.scope").mkdir(parents=True)
            made[name] = slice_
        yield made
    finally:
        for slice_ in made.values():
            for scope in (p for p in slice_.glob("*.scope") if p.is_dir()):
                for pid in (scope / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
                with contextlib.suppress(OSError):
                    scope.rmdir()
            with contextlib.suppress(OSError):
                slice_.rmdir()


def test_a_killed_sessions_empty_slice_goes_and_live_or_busy_ones_stay() -> None:
    require(os.geteuid() == 0, "needs root to make cgroups")
    root = cgroup2_mount()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(ended.stdout)
    with _slices(root, {"Dead": dead, "Alive": os.getpid(), "Busy": dead}) as made:
        busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (made["Busy"] / next(p.name for p in made["Busy"].glob("*.scope")) / "cgroup.procs"
             ).write_text(str(busy.pid))  # fmt: skip
            removed = sweep_killed_sessions_scopes(root)
        finally:
            busy.kill()
            busy.wait()  # out of its cgroup before _slices removes it
        assert made["Dead"] in removed and not made["Dead"].exists()
        assert made["Alive"].exists(), "a live session's slice was removed"
        assert made["Busy"].exists(), "a slice with a process in it was removed"
