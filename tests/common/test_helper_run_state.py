"""The helper's run record read as the window and the CLI read it: only a record
root alone could have written says "stopped" or "killed"; anything else reads
"unknown", never a traceback (chadthrottle.helper_run_state). Pure file logic
in a private directory, the helper's writer (helper/run_state.py) included."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper_run_state import (
    RUNNING,
    STOPPED,
    LastStop,
    process_start,
    read_last_stop,
    record_path,
    record_text,
)

from tests.support.status_folder import status_folder

BUS = "unix:path=/tmp/no-such-bus-of-gui25"
NOBODY = 65534


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return status_folder(tmp_path)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _write(folder: Path, text: str) -> Path:
    path = record_path(BUS, folder)
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_the_writer_says_running_then_stopped(folder: Path) -> None:
    record = RunRecord(BUS, folder)
    assert record.was_stopped()  # none yet: nothing of an earlier helper is left
    record.start()
    assert read_last_stop(BUS, folder) is LastStop.RUNNING  # this process lives
    assert not record.was_stopped()
    assert record.path.stat().st_mode & 0o777 == 0o644
    record.stopped()
    assert read_last_stop(BUS, folder) is LastStop.STOPPED
    assert record.was_stopped()
    assert [p.name for p in folder.iterdir()] == [record.path.name]  # no half-written file left


def test_running_of_a_process_that_is_gone_reads_killed(folder: Path) -> None:
    _write(folder, record_text(RUNNING, _dead_pid(), 12345))
    assert read_last_stop(BUS, folder) is LastStop.KILLED


def test_killed_while_limits_were_paused_reads_apart(folder: Path) -> None:
    """Paused, the kernel held none of its limits: a kill leaves nothing in force."""
    _write(folder, record_text(RUNNING, _dead_pid(), 12345, paused=True))
    assert read_last_stop(BUS, folder) is LastStop.KILLED_PAUSED
    record = RunRecord(BUS, folder)
    record.serving(paused=True)  # the bus name owned: its record from here
    assert read_last_stop(BUS, folder) is LastStop.RUNNING  # alive: not said killed


def test_a_reused_pid_is_not_the_helper(folder: Path) -> None:
    """The pid lives, but another process has it (its start time differs):
    no helper holds the record's lock (test_run_record_lock.py)."""
    started = process_start(os.getpid())
    assert started is not None
    _write(folder, record_text(RUNNING, os.getpid(), started + 1))
    assert read_last_stop(BUS, folder) is LastStop.KILLED


def test_another_bus_has_its_own_record(folder: Path) -> None:
    _write(folder, record_text(STOPPED, 1, 1))
    assert read_last_stop(BUS, folder) is LastStop.STOPPED
    assert read_last_stop("unix:path=/tmp/another-bus", folder) is LastStop.UNKNOWN


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"format": 3, "state": "stopped", "pid": 1, "started": 1}',
        '{"format": 1, "state": "stopped", "pid": 1, "started": 1}',
        '{"format": 2, "state": "gone", "pid": 1, "started": 1}',
        '{"format": 2, "state": "running", "pid": "1", "started": 1}',
        '{"format": 2, "state": "running", "pid": -5, "started": 1}',
        '{"format": 2, "state": "running", "pid": true, "started": 1}',
        '{"format": 2, "state": "stopped"}' + " " * 600,
        '{"format": 2, "state": "running", "pid": 999999999, "started": 1, "paused": 1}',
    ],
    ids=[
        "empty",
        "text",
        "list",
        "format",
        "format-before-the-lock",
        "state",
        "pid-text",
        "pid-negative",
        "pid-bool",
        "long",
        "paused-not-bool",
    ],
)
def test_a_record_not_as_written_reads_unknown(folder: Path, text: str) -> None:
    _write(folder, text)
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN


def test_a_record_another_user_could_write_reads_unknown(folder: Path, tmp_path: Path) -> None:
    """Forged into a claim either way by someone else: never believed."""
    path = _write(folder, record_text(STOPPED, 1, 1))
    assert read_last_stop(BUS, folder) is LastStop.STOPPED
    os.chown(path, NOBODY, NOBODY)  # another user's file
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
    os.chown(path, 0, 0)
    path.chmod(0o666)  # root's, but anyone may write it
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
    path.chmod(0o644)
    folder.chmod(0o777)  # anyone may replace it
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
    folder.chmod(0o755)
    os.chown(folder, NOBODY, NOBODY)  # the directory another user's
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
    os.chown(folder, 0, 0)
    target = tmp_path / "elsewhere.json"
    target.write_text(record_text(STOPPED, 1, 1))
    path.unlink()
    path.symlink_to(target)  # a symlink, even to root's own file
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN
    path.unlink()
    path.mkdir()  # not a file
    assert read_last_stop(BUS, folder) is LastStop.UNKNOWN


def test_the_writer_refuses_a_directory_not_roots(folder: Path) -> None:
    os.chown(folder, NOBODY, NOBODY)
    record = RunRecord(BUS, folder)
    record.start()  # logged, not raised: the helper serves without it
    assert not record.path.exists()


def test_a_record_of_another_boot_says_nothing(folder: Path) -> None:
    """Where /run outlives a reboot (not a tmpfs), a record of the boot before
    speaks of kernel objects that went with it: a "running" of a dead pid is
    no killed helper whose limits stay, and a pid of this boot that happens to
    have the same start time is not that helper (review25). The boot id in the
    record tells; a record without one (written before it) is read as before."""
    started = process_start(os.getpid())
    assert started is not None
    for pid, at in ((_dead_pid(), 12345), (os.getpid(), started)):
        text = json.dumps({"format": 2, "state": RUNNING, "pid": pid, "started": at,
                           "paused": False, "boot": "00000000-0000-4000-8000-000000000000"})  # fmt: skip
        _write(folder, text)
        assert read_last_stop(BUS, folder) is LastStop.UNKNOWN, pid
    _write(folder, record_text(RUNNING, _dead_pid(), 12345))  # this boot's
    assert read_last_stop(BUS, folder) is LastStop.KILLED
