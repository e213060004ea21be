"""A helper's held-caps record that is nobody's is named by the leak check and
swept after the test that closed its killed helper; one a live helper of its
instance may write, or whose map still lives (a killed helper's successor
may still read it), is neither (tests/support/held_records.py, held35: a
killed test helper with no successor left one every CI run)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.bpf_objects import MapSpec, create_map
from chadthrottle.helper.kernel.bpf_syscalls import map_info
from chadthrottle.helper.kernel.held_caps import TAGS_MAP_NAME, record_of
from chadthrottle.helper.kernel.ownership import RUN_DIR, OwnershipRecord, journal_instance
from chadthrottle.helper.main import DEFAULT_STATE_DIR

from tests.support import held_records
from tests.support.helper_process import HelperProcess
from tests.support.leaks import HELD, differences, snapshot
from tests.support.requirements import require, require_root
from tests.support.waiting import eventually

BPF_MAP_TYPE_ARRAY = 2


def _tags_map() -> int:
    """A map of the socket_tags name (an array: what is looked at is its id
    and name), its fd: alive until closed."""
    return create_map(MapSpec(TAGS_MAP_NAME, BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, 0, 0), -1)


@contextlib.contextmanager
def _record(map_id: int) -> Iterator[tuple[str, Path]]:
    """A held-caps record of a new instance naming map_id; removed after."""
    instance = secrets.token_hex(8)
    path = record_of(instance)
    assert path is not None
    path.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        path.write_text(f"map {map_id}\nwindow 1 2097152\n")
        yield instance, path
    finally:
        path.unlink(missing_ok=True)
        held_records.KILLED.pop(instance, None)


def _gone_map_id() -> int:
    fd = _tags_map()
    map_id = map_info(fd)[1]
    os.close(fd)  # ids are not given again (cyclic): provably gone
    return map_id


def _named(before: dict[str, object], path: Path) -> bool:
    return any(HELD in d and path.name in d for d in differences(before, snapshot()))


def test_a_record_whose_map_is_gone_is_named_unless_a_helper_of_its_instance_lives() -> None:
    require_root()
    before = snapshot()
    with _record(_gone_map_id()) as (instance, path):
        live = OwnershipRecord([], instance=instance)  # a live datapath of that instance
        try:
            assert not _named(before, path), "a live helper's record was named"
        finally:
            live.close()
        assert _named(before, path), "a record nobody's was not named"
    assert not _named(before, path)


def test_a_record_whose_map_lives_is_not_named_nor_swept_until_the_map_goes() -> None:
    """A killed helper's map lives while its programs do (on the cgroup root
    until a successor detaches them, on a tc hook in a test's namespace until
    the namespace goes): its record is still of use, and stays."""
    require_root()
    before = snapshot()
    fd = _tags_map()
    try:
        with _record(map_info(fd)[1]) as (instance, path):
            held_records.killed_closed(instance)
            assert path.exists() and instance in held_records.KILLED
            assert not _named(before, path), "a record whose map lives was named"
            os.close(fd)
            fd = -1
            held_records.sweep_killed(5.0)
            assert not path.exists(), "the killed helper's record stayed, nobody's"
            assert instance not in held_records.KILLED
    finally:
        if fd >= 0:
            os.close(fd)


def test_the_sweep_takes_only_the_killed_helpers_record() -> None:
    """Another instance's record, nobody's too, is not this session's to take:
    only named (another session's test may sweep it in a moment)."""
    require_root()
    with _record(_gone_map_id()) as (killed, ours), _record(_gone_map_id()) as (_other, theirs):
        held_records.killed_closed(killed)
        assert not ours.exists()
        held_records.sweep_killed(0.0)
        assert theirs.exists(), "another instance's record was removed"


def test_a_record_held_past_the_tests_wait_goes_when_its_map_goes() -> None:
    """review38 H1: a namespace's kernel cleanup may outlast the test's end's
    wait (longer at load): the record, nobody's a moment later, stayed until
    this session's next test ended, and a session beside ending named it."""
    require_root()
    fd = _tags_map()
    try:
        with _record(map_info(fd)[1]) as (instance, path):
            held_records.killed_closed(instance)
            assert instance in held_records.sweep_killed(0.0), "the wait ended with it held"
            os.close(fd)  # the namespace's cleanup puts the last program, after the wait
            fd = -1
            assert eventually(lambda: not path.exists(), 5.0), "left until the next test's end"
            assert eventually(lambda: instance not in held_records.KILLED, 1.0)
    finally:
        if fd >= 0:
            os.close(fd)


def test_the_sessions_end_stops_the_watch_and_starts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """review36b: the session's end stops the watch and joins it; its last
    sweep, which waits itself, starts none (one ran on beside the leak
    check's grace and into the interpreter's exit). A stop of its own here,
    not the session's."""
    require_root()
    monkeypatch.setattr(held_records, "_STOP", threading.Event())
    fd = _tags_map()
    try:
        with _record(map_info(fd)[1]) as (instance, _path):
            held_records.killed_closed(instance)
            assert instance in held_records.sweep_killed(0.0), "the wait ended with it held"
            watch = held_records._THREAD[0]
            assert watch is not None and watch.is_alive(), "no watch of the record still held"
            held_records.stop_watching()
            assert not watch.is_alive(), "the watch ran on past the session's end"
            assert instance in held_records.sweep_killed(0.0)  # the session's last sweep
            assert held_records._THREAD[0] is watch, "the session's last sweep started a watch"
    finally:
        if fd >= 0:
            os.close(fd)


def test_a_record_of_an_instance_whose_datapath_is_starting_is_nobodys_only_after() -> None:
    """review38 H2: a starting datapath writes its record as .new first
    (ownership.OwnershipRecord): its instance is alive meanwhile."""
    require_root()
    before = snapshot()
    with _record(_gone_map_id()) as (instance, path):
        making = RUN_DIR / f"datapath-{os.getpid()}-{secrets.token_hex(4)}-{instance}.new"
        making.write_text("")
        try:
            assert not held_records.abandoned(path), "a starting helper's record read nobody's"
            assert not _named(before, path)
        finally:
            making.unlink(missing_ok=True)
        assert _named(before, path)


def test_a_killed_test_helper_with_no_state_dir_sweeps_nothing_of_the_default_instance() -> None:
    """review38 H3: with no state directory a test's helper runs as the
    product's default instance; its close would take that instance's record
    (and programs, tc objects), the product's. It refuses, loudly."""
    require_root()
    instance = journal_instance(DEFAULT_STATE_DIR)
    path = record_of(instance)
    assert path is not None
    require(not path.exists(), f"the default instance has no record here ({path}): not touched")
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(f"map {_gone_map_id()}\nwindow 1 2097152\n")
    helper = HelperProcess("unix:path=/nonexistent")
    helper._process = subprocess.Popen(["sleep", "600"])  # as killed: no helper needed
    helper._process.kill()
    helper._process.wait()
    try:
        with pytest.raises(RuntimeError, match="no state_dir"):
            helper.close()
        assert path.exists(), "the product's default instance's record was swept"
    finally:
        path.unlink(missing_ok=True)
        held_records.KILLED.pop(instance, None)
