"""A live helper is told from a killed one by the write lock it holds on its
run record, not by its pid (lock26; chadthrottle.helper_run_state): real
writer processes (helper/run_state.py's RunRecord) killed with SIGKILL or
stopped, read by root, by another user, and by another user in another pid
namespace (as the Flatpak's window is: the helper's pid names nothing there),
with another user taking every lock it can on the record meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper_run_state import (
    RUNNING,
    LastStop,
    process_start,
    read_last_stop,
    record_path,
    record_text,
)

from tests.support.requirements import require_program
from tests.support.status_folder import status_folder

BUS = "unix:path=/tmp/no-such-bus-of-lock26"
NOBODY = 65534
# RunRecord in a process of its own: one method call a line ("running paused").
WRITER = r"""
import sys
from pathlib import Path
from chadthrottle.helper.run_state import RunRecord
record = RunRecord(sys.argv[1], Path(sys.argv[2]))
print("ready", flush=True)
for line in sys.stdin:
    name, *flags = line.split()
    getattr(record, name)(*[flag == "paused" for flag in flags])
    print("done", flush=True)
"""
# As another user: read the record as the window does, one read a line.
READER = r"""
import sys
from pathlib import Path
from chadthrottle.helper_run_state import read_last_stop
for _line in sys.stdin:
    print(read_last_stop(sys.argv[1], Path(sys.argv[2])).value, flush=True)
"""
# As another user: every lock it can take on the record, held until stdin ends.
LOCKER = r"""
import errno, fcntl, json, os, struct, sys
path = sys.argv[1]
flock = struct.Struct("@hhqqi4x")
def lock(kind):
    return flock.pack(kind, os.SEEK_SET, 0, 0, 0)
taken, refused = [], {}
def attempt(name, call):
    try:
        call()
        taken.append(name)
    except OSError as error:
        refused[name] = errno.errorcode[error.errno]
for mode, name in ((os.O_RDWR, "open-rdwr"), (os.O_WRONLY, "open-wronly")):
    attempt(name, lambda: os.open(path, mode))
fds = [os.open(path, os.O_RDONLY) for _ in range(4)]
attempt("ofd-wrlck", lambda: fcntl.fcntl(fds[0], fcntl.F_OFD_SETLK, lock(fcntl.F_WRLCK)))
attempt("posix-wrlck", lambda: fcntl.fcntl(fds[1], fcntl.F_SETLK, lock(fcntl.F_WRLCK)))
attempt("ofd-rdlck", lambda: fcntl.fcntl(fds[0], fcntl.F_OFD_SETLK, lock(fcntl.F_RDLCK)))
attempt("posix-rdlck", lambda: fcntl.fcntl(fds[1], fcntl.F_SETLK, lock(fcntl.F_RDLCK)))
attempt("flock-sh", lambda: fcntl.flock(fds[3], fcntl.LOCK_SH | fcntl.LOCK_NB))
fcntl.flock(fds[3], fcntl.LOCK_UN)  # or it refuses the exclusive one below
attempt("flock-ex", lambda: fcntl.flock(fds[2], fcntl.LOCK_EX | fcntl.LOCK_NB))
attempt("lease-rd", lambda: fcntl.fcntl(fds[3], fcntl.F_SETLEASE, fcntl.F_RDLCK))
print(json.dumps({"taken": taken, "refused": refused}), flush=True)
sys.stdin.read()
"""


class Writer:
    """A process keeping a run record as the helper does."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, BUS, str(folder)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def call(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        assert self._line() == "done", f"the writer died at {line!r}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def end(self) -> int:
        """Ended as the helper ends: its descriptors closed by exiting."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait()


class AsNobody:
    """A script run as another user (wrap: in another pid namespace, or a
    sandbox), kept running, answering a line for each line it is sent."""

    def __init__(self, script: str, *args: str, wrap: list[str] | None = None) -> None:
        argv = [*(wrap or []), require_program("setpriv"), f"--reuid={NOBODY}",
                f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c", script, *args]  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
        if "PYTHONPATH" in os.environ:  # the same code as the test's (a run without the fix)
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def line(self) -> str:
        assert self.process.stdout is not None
        found = self.process.stdout.readline().strip()
        assert found, "the other user's process died"
        return found

    def ask(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.line()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return status_folder(tmp_path)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A record directory another user can reach (pytest's tmp_path is root's 0700)."""
    top = Path(tempfile.mkdtemp(prefix="chadthrottle-lock26-", dir="/tmp"))
    try:
        top.chmod(0o755)
        yield status_folder(top)
    finally:
        shutil.rmtree(top)


@pytest.fixture
def writer(folder: Path) -> Iterator[Writer]:
    made = Writer(folder)
    try:
        yield made
    finally:
        if made.process.poll() is None:
            made.kill()


def test_running_is_alive_while_the_writer_lives_across_rewrites_and_killed_after(
    folder: Path, writer: Writer
) -> None:
    """Each rewrite replaces the file by rename: the lock must be on the new
    one before it shows. SIGKILL drops it: killed, and paused is kept."""
    for line in ("start", "serving", "running paused", "running", "running paused"):
        writer.call(line)
        assert read_last_stop(BUS, folder) is LastStop.RUNNING, line
    assert [p.name for p in folder.iterdir()] == [record_path(BUS, folder).name]
    writer.kill()
    assert read_last_stop(BUS, folder) is LastStop.KILLED_PAUSED
    again = Writer(folder)  # its successor: alive as soon as its record says running
    try:
        again.call("start")
        assert read_last_stop(BUS, folder) is LastStop.RUNNING
        again.call("serving")
        again.kill()
        assert read_last_stop(BUS, folder) is LastStop.KILLED
    finally:
        if again.process.poll() is None:
            again.kill()


def test_a_writer_that_stopped_then_ended_reads_stopped(folder: Path, writer: Writer) -> None:
    writer.call("start")
    writer.call("stopped")
    assert read_last_stop(BUS, folder) is LastStop.STOPPED
    assert writer.end() == 0
    assert read_last_stop(BUS, folder) is LastStop.STOPPED


def test_a_running_record_nobody_holds_is_killed_whatever_its_pid(folder: Path) -> None:
    """The pid is not asked: a "running" with this live process's own pid and
    start time, but no lock held on it, is a killed helper's (its writer would
    hold the lock). Before: read alive from /proc."""
    started = process_start(os.getpid())
    assert started is not None
    path = record_path(BUS, folder)
    path.write_text(record_text(RUNNING, os.getpid(), started))
    path.chmod(0o644)
    assert read_last_stop(BUS, folder) is LastStop.KILLED


def test_a_record_of_a_helper_from_before_the_lock_is_not_said_killed(
    folder: Path, writer: Writer
) -> None:
    """Format 1 (no lock): its helper may serve on across an upgrade. Readers
    say nothing of it; a new helper leaves it to that helper while it lives."""
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        started = process_start(sleeper.pid)
        assert started is not None
        path = record_path(BUS, folder)
        text = json.dumps({"format": 1, "state": RUNNING, "pid": sleeper.pid,
                           "started": started, "paused": False})  # fmt: skip
        path.write_text(text + "\n")
        path.chmod(0o644)
        assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
        writer.call("start")
        assert path.read_text() == text + "\n"  # left to the helper that serves
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_second_writer_of_the_bus_does_not_take_or_break_the_lock(
    folder: Path, writer: Writer
) -> None:
    """A second helper started by hand (never given the bus name) starts and
    stops beside the serving one: the serving one stays alive, and killed
    reads killed (review25's rule, now with the lock)."""
    writer.call("start")
    writer.call("serving")
    second = Writer(folder)
    try:
        second.call("start")
        second.call("stopped")
        assert read_last_stop(BUS, folder) is LastStop.RUNNING
        assert second.end() == 0
        assert read_last_stop(BUS, folder) is LastStop.RUNNING
    finally:
        if second.process.poll() is None:
            second.kill()
    writer.kill()
    assert read_last_stop(BUS, folder) is LastStop.KILLED


def test_another_user_cannot_fake_alive_or_refuse_the_lock(shared_folder: Path) -> None:
    """Another user takes every lock it can on the record of a live helper:
    none is a write lock (it cannot open root's 0644 file for writing), so none
    conflicts with the reader's question; the helper's next record is locked
    all the same (made 0600 until locked); killed, it reads killed while the
    other user still holds its locks."""
    writer = Writer(shared_folder)
    locker: AsNobody | None = None
    try:
        writer.call("start")
        locker = AsNobody(LOCKER, str(record_path(BUS, shared_folder)))
        held = json.loads(locker.line())
        assert held["refused"] == {"open-rdwr": "EACCES", "open-wronly": "EACCES",
                                   "ofd-wrlck": "EBADF", "posix-wrlck": "EBADF",
                                   "ofd-rdlck": "EAGAIN", "posix-rdlck": "EAGAIN",
                                   "lease-rd": "EACCES"}, held  # fmt: skip
        assert sorted(held["taken"]) == ["flock-ex", "flock-sh"], held
        writer.call("serving")  # a new file: the old one's read locks refuse nothing
        writer.call("running paused")
        assert read_last_stop(BUS, shared_folder) is LastStop.RUNNING
        locker.close()
        locker = AsNobody(LOCKER, str(record_path(BUS, shared_folder)))
        json.loads(locker.line())
        writer.kill()
        assert read_last_stop(BUS, shared_folder) is LastStop.KILLED_PAUSED
        locker.close()
        locker = AsNobody(LOCKER, str(record_path(BUS, shared_folder)))
        held = json.loads(locker.line())  # on a dead helper's record: read locks only
        assert "ofd-wrlck" not in held["taken"] and "posix-wrlck" not in held["taken"], held
        assert "ofd-rdlck" in held["taken"] and "posix-rdlck" in held["taken"], held
        assert read_last_stop(BUS, shared_folder) is LastStop.KILLED_PAUSED
    finally:
        if locker is not None:
            locker.close()
        if writer.process.poll() is None:
            writer.kill()


def _wrap(how: str, folder: Path) -> tuple[list[str], Path]:
    """The command line a reader runs under, and where it finds the records."""
    if how == "own-pids":  # its own /proc too: the writer's pid is not in it
        return [require_program("unshare"), "--pid", "--fork", "--mount-proc"], folder
    if how == "flatpak-like":
        # What the manifest's --filesystem=/run/chadthrottle-status:ro gives the
        # window: its own pid namespace and /proc, a /run of its own, the host's
        # record directory bound read-only into it (flatpak-exports.c: bwrap
        # --ro-bind of the path, if it exists when the app starts).
        inside = Path("/run/chadthrottle-status")
        return [require_program("bwrap"), "--ro-bind", "/", "/", "--tmpfs", "/run",
                "--ro-bind", str(folder), str(inside), "--proc", "/proc", "--dev", "/dev",
                "--unshare-pid", "--die-with-parent", "--"], inside  # fmt: skip
    return [], folder


@pytest.mark.parametrize("how", ["same-pids", "own-pids", "flatpak-like"])
def test_another_user_reads_alive_and_killed_without_the_helpers_pid(
    shared_folder: Path, how: str
) -> None:
    """As the window reads it, also from a pid namespace of its own, as the
    Flatpak's window is (the helper's pid names nothing in its /proc; before,
    a live helper read killed there), and through a read-only bind mount of
    the record directory, made before the first record. SIGSTOP: a helper
    stopped in its tracks still lives."""
    writer = Writer(shared_folder)
    wrap, seen_at = _wrap(how, shared_folder)
    reader = AsNobody(READER, BUS, str(seen_at), wrap=wrap)
    try:
        assert reader.ask() == "unknown"
        writer.call("start")
        assert reader.ask() == "running"
        os.kill(writer.process.pid, signal.SIGSTOP)
        try:
            assert reader.ask() == "running"
        finally:
            os.kill(writer.process.pid, signal.SIGCONT)
        writer.call("running paused")
        assert reader.ask() == "running"
        writer.kill()
        assert reader.ask() == "killed-paused"
        again = Writer(shared_folder)
        try:
            again.call("start")
            assert reader.ask() == "running"
            again.call("stopped")
            assert again.end() == 0
            assert reader.ask() == "stopped"
        finally:
            if again.process.poll() is None:
                again.kill()
    finally:
        reader.close()
        if writer.process.poll() is None:
            writer.kill()
