"""A datapath's ownership record against a sweep (ownership.dead_records) that
runs at any moment: a live record is never taken for a dead one.

Pure file logic on a private RUN_DIR: the sweep is run at the exact moment
between two steps of the record's owner (fcntl.flock wrapped), where two
processes met it 131 times in 20,000 (review8, 2026-12-06)."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import ownership


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(ownership, "RUN_DIR", tmp_path)
    return tmp_path


def _before_flock(monkeypatch: pytest.MonkeyPatch, when: Callable[[int], bool],
                  then: Callable[[], None]) -> None:  # fmt: skip
    """Run then() once, right before the first flock whose mode when() accepts."""
    real = fcntl.flock
    done = []

    def flock(fd: int, mode: int) -> None:
        if not done and when(mode):
            done.append(True)
            then()
        real(fd, mode)

    monkeypatch.setattr(ownership.fcntl, "flock", flock)


def test_a_sweep_between_a_records_making_and_its_lock_leaves_it(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made in place and locked after, the record was open to a sweep in
    between: it was locked by the sweep, read empty, and removed, and its owner
    then wrote its ids into a removed file (a killed helper's programs that no
    record lists are never detached)."""
    swept: list[set[int]] = []

    def sweep() -> None:
        with ownership.dead_records("") as ids:
            swept.append(set(ids))

    _before_flock(monkeypatch, lambda mode: mode == fcntl.LOCK_EX, sweep)
    record = ownership.OwnershipRecord([41, 42])
    try:
        assert swept == [set()]
        assert record.path.exists(), "a sweep removed a live datapath's record"
        assert record.path.read_text().split() == ["41", "42"]
        assert [path.name for path in run_dir.iterdir()] == [record.path.name]
        with ownership.dead_records("") as ids:  # locked by its owner: alive
            assert ids == set()
        assert record.path.exists()
    finally:
        record.close()
    assert list(run_dir.iterdir()) == []


def test_a_record_its_owner_closed_is_not_read_as_a_dead_ones(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that opened a record before its owner closed it (removed, then
    unlocked: its programs were detached first) must not list its ids."""
    record = ownership.OwnershipRecord([7, 8])
    _before_flock(monkeypatch, lambda mode: bool(mode & fcntl.LOCK_NB), record.close)
    with ownership.dead_records("") as ids:
        assert ids == set()


def test_a_dead_records_ids_stay_recorded_when_their_sweep_fails(run_dir: Path) -> None:
    """Removed only after the caller detached them: a failed detach is tried
    again by the next sweep, not forgotten with the record."""
    dead = run_dir / "datapath-1-dead.ids"
    dead.write_text("5 6")  # nobody holds it: its owner was killed
    with pytest.raises(OSError), ownership.dead_records("") as ids:
        assert ids == {5, 6}
        raise OSError("the detach failed")
    assert dead.exists()
    with ownership.dead_records("") as ids:
        assert ids == {5, 6}
    assert not dead.exists()


def test_a_sweep_takes_only_its_own_instances_dead_records_and_those_of_no_helper(
    run_dir: Path,
) -> None:
    """Another helper's dead datapath is its successor's: a test session's
    helper beside the user's took a killed user helper's programs away before
    that helper's restart had taken its sockets over (review8, 2026-12-06)."""
    mine, other = "a1" * 8, "b2" * 8
    (run_dir / f"datapath-11-dead-{mine}.ids").write_text("1 2")
    (run_dir / "datapath-12-dead.ids").write_text("3")  # a datapath of no helper (a tool's)
    (run_dir / f"datapath-13-dead-{other}.ids").write_text("4 5")
    with ownership.dead_records(mine) as ids:
        assert ids == {1, 2, 3}
    assert [path.name for path in run_dir.iterdir()] == [f"datapath-13-dead-{other}.ids"]
    with ownership.dead_records(other) as ids:
        assert ids == {4, 5}
    assert list(run_dir.iterdir()) == []


def test_a_record_names_its_instance_and_refuses_a_name_that_is_not_one(run_dir: Path) -> None:
    record = ownership.OwnershipRecord([9], "c3" * 8)
    try:
        assert record.path.name.endswith(f"-{'c3' * 8}.ids")
        with ownership.dead_records("c3" * 8) as ids:  # alive: locked by its owner
            assert ids == set()
    finally:
        record.close()
    with pytest.raises(ValueError):
        ownership.OwnershipRecord([9], "../x")
    assert list(run_dir.iterdir()) == []


def test_a_record_left_half_made_by_a_killed_maker_goes_and_a_live_makers_stays(
    run_dir: Path,
) -> None:
    """A helper killed between making its record and renaming it attached
    nothing: its .new file is removed; one whose maker lives is its maker's."""
    dead_pid = _reaped_pid()
    dead = run_dir / f"datapath-{dead_pid}-abcd.new"
    live = run_dir / f"datapath-{os.getpid()}-abcd.new"
    dead.touch()
    live.touch()
    with ownership.dead_records("") as ids:
        assert ids == set()
    assert not dead.exists()
    assert live.exists()


def _reaped_pid() -> int:
    """The pid of a child that has ended and been reaped (free, unless reused)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
