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
from tests.support.netns import sweep_killed_sessions_namespaces, sweep_killed_sessions_scopes
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


def test_a_slice_gone_since_the_listing_is_passed_over(tmp_path: Path) -> None:
    """Two sessions sweep at once (the suite's lanes, another engineer's run):
    a slice the other removed between this one's listing and its look inside
    raised FileNotFoundError out of app_scope and failed the test that wanted
    an app scope. A dangling link of the slices' name is such a slice."""
    (tmp_path / f"{own_names.TEST_NAME_PREFIX}gone.slice").symlink_to(tmp_path / "removed")
    assert sweep_killed_sessions_scopes(tmp_path) == []


# A session making one namespace through tests/support/netns.py, then killed
# (SIGKILL: no finally, no atexit) or, with "live", waiting for stdin.
SESSION = """
import os, signal, sys
from tests.support import netns
netns._add_netns(sys.argv[1])
print("made", flush=True)
if sys.argv[2] == "live":
    sys.stdin.readline()
else:
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def test_a_killed_sessions_namespaces_go_and_a_live_sessions_or_unrecorded_ones_stay() -> None:
    require(os.geteuid() == 0, "needs root to make network namespaces")
    tag = secrets.token_hex(3)
    killed, live, unrecorded = f"ctswk-{tag}", f"ctswl-{tag}", f"ctswu-{tag}"
    root = Path(__file__).resolve().parent.parent
    session = [sys.executable, "-c", SESSION]
    try:
        # the live one first: each session's first namespace sweeps the killed ones'
        alive = subprocess.Popen([*session, live, "live"], cwd=root, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert alive.stdout is not None and alive.stdout.readline() == "made\n"
            dead = subprocess.run(
                [*session, killed, "killed"], cwd=root, capture_output=True, text=True
            )
            assert dead.returncode == -9 and dead.stdout == "made\n", dead
            subprocess.run(["ip", "netns", "add", unrecorded], check=True)
            assert {live, unrecorded} <= _namespaces()
            sweep_killed_sessions_namespaces()  # (another session starting may sweep too)
            left = _namespaces()
        finally:
            alive.communicate("\n", timeout=30)
        assert killed not in left, "the killed session's namespace stayed"
        assert live in left, "a live session's namespace was removed"
        assert unrecorded in left, "a namespace no session recorded was removed"
        # the live session ended without deleting its namespace: a later sweep takes it
        sweep_killed_sessions_namespaces()
        assert live not in _namespaces()
    finally:
        for name in (killed, live, unrecorded):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
