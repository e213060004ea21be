"""A start stopped early leaves nothing behind: no traceback, no litter.

A SIGINT before the helper's event loop took the signals over (its imports,
about 0.1 s) raised KeyboardInterrupt: a traceback and a death by signal
(SIGTERM there killed it, status -15). A helper killed while it merged the
kernel headers left its `headers-*.tmpPID` tree in the cache directory for
good. Real files in a temporary directory; one real helper process, held
inside its imports by a full stderr pipe.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chadthrottle.helper.kernel.bcc_env import remove_dead_merges

PIPE_BYTES = 8192  # -X importtime writes ~3.8 KiB before main.py runs, ~16 KiB in all
WAIT_S = 20.0
EXIT_WAIT_S = 10.0


def test_sigint_during_the_imports_ends_the_start_clean(tmp_path: Path) -> None:
    """The helper blocks writing its import times into a pipe of 8 KiB, which
    happens in main.py's own imports: the SIGINT is sure to come there."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "chadthrottle.helper.main",
             "--bus-address", f"unix:path={tmp_path / 'no-bus'}",
             "--state-dir", str(tmp_path / "state"), "--cache-dir", str(tmp_path / "cache")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
        )  # fmt: skip
    finally:
        os.close(write_end)
    output = b""
    try:
        assert _wait_until(lambda: _blocked_writing(process)), "its stderr never filled"
        process.send_signal(signal.SIGINT)
        with os.fdopen(read_end, "rb") as reader:
            read_end = -1
            output = reader.read()  # until the helper exits (EOF)
        status = process.wait(EXIT_WAIT_S)
    finally:
        if read_end != -1:
            os.close(read_end)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert status == 0, f"exit {status}:\n{text[-3000:]}"
    assert "stopped before starting" in text, text[-3000:]
    assert not (tmp_path / "state").exists() and not (tmp_path / "cache").exists()


def _wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def _blocked_writing(process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"the helper ended (status {process.returncode}) before it blocked")
    # In write(2) on fd 2 (x86_64 number 1), and asleep there: the pipe is full.
    return Path(f"/proc/{process.pid}/syscall").read_text().startswith("1 0x2 ")


def _merge_litter(cache: Path, pid: int) -> Path:
    tree = cache / f"headers-linux-headers-6.1.0-1-amd64.tmp{pid}" / "include" / "linux"
    tree.mkdir(parents=True)
    (tree / "bpf.h").symlink_to("/nonexistent/bpf.h")
    return tree.parents[1]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid  # reaped: no process has it until the pids wrap


def test_a_start_removes_merges_of_dead_helpers_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dead = _merge_litter(cache, _dead_pid())
    stranger = subprocess.Popen(["sleep", "30"])  # alive, not a helper: its pid was reused
    try:
        reused = _merge_litter(cache, stranger.pid)
        mine = _merge_litter(cache, os.getpid())  # alive and merging (this process)
        held = _merge_litter(cache, 1)  # alive: init is no helper, but the tree is locked
        lock = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(lock, fcntl.LOCK_EX)
        other = cache / "headers-linux-headers-6.1.0-1-amd64.tmpx1"  # not our name pattern
        other.mkdir()
        outside = tmp_path / f"headers-x.tmp{_dead_pid()}"  # not in the cache directory
        outside.mkdir()
        linked = cache / f"headers-y.tmp{_dead_pid()}"
        linked.symlink_to(outside)  # not a directory of ours
        try:
            assert sorted(path.name for path in remove_dead_merges(cache)) == sorted(
                [dead.name, reused.name]
            )
        finally:
            os.close(lock)
    finally:
        stranger.kill()
        stranger.wait()
    assert not dead.exists() and not reused.exists()
    assert mine.is_dir() and held.is_dir() and other.is_dir() and outside.is_dir()
    assert linked.is_symlink()
    assert remove_dead_merges(tmp_path / "missing") == []


def test_a_merge_of_a_live_helper_stays(tmp_path: Path) -> None:
    """A helper from before the lock (mid-merge, nothing held) is left to finish."""
    helper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "chadthrottle.helper.main"]
    )
    try:
        assert _wait_until(lambda: b"helper" in Path(f"/proc/{helper.pid}/cmdline").read_bytes())
        merging = _merge_litter(tmp_path, helper.pid)
        assert remove_dead_merges(tmp_path) == []
        assert merging.is_dir()
    finally:
        helper.kill()
        helper.wait()
    assert remove_dead_merges(tmp_path) == [merging]  # once it is gone
