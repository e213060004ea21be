"""A SIGKILLed test helper's held-caps record, and when it is nobody's (its
walks record and tc journals: tests/support/left_records.py, swept with it).

A helper keeps /run/chadthrottle/caps-INSTANCE.held for its successor
(helper/kernel/held_caps.py): the id of its socket_tags map and the caps its
slots set, so the next start of that instance lifts what the killed one left
on sockets. A test whose killed helper gets no successor left it there, one
every CI run (test_namespace_shapers_lifecycle's close test, held35).

A record is of use only while a map it names lives (the killed helper's
programs, on the cgroup root or a tc hook, hold it until they are gone; a
successor's sweep holds it by fd): once every one is gone no start can lift
anything through it. So a test's close removes its killed helper's record
only when the record is that helper's instance's (its state directory), no
live datapath of that instance runs (it would be writing it), and every map
it names is gone. A map still held by the killed helper's tc programs in a
test's namespace goes with that namespace, after the close: the instance is
kept here and swept again after each test and at the session's end; one
still held when the test's end stops waiting (the kernel's cleanup of a
deleted namespace runs later, and longer at load) is looked at in the
background until it goes, so it is not left nobody's until this session's
next test ends, where a session beside ending names it (review38 H1). The
product never does this: a helper touches no record it cannot prove it
made, and a dead instance's record stays for that instance's successor.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from tests.support import left_records
from tests.support.waiting import eventually

# Instances of this session's SIGKILLed helpers whose record may still be
# there -> when (monotonic) a test closed it.
KILLED: dict[str, float] = {}
# How long a test's end waits, after its fixtures removed its namespaces, for
# the maps of the killed helpers it closed to go: the kernel frees a map once
# its last program is put, a moment after the close's detach, or once its
# cleanup of a deleted namespace put the tc programs there. Here a map held
# only by a tc program in a namespace went 26-55 ms after `ip netns del` (30
# runs, 2026-12-07 22:16-22:24, load 2.5-9.6, 10 of them beside 3 busy loops
# on the 2 cores); longer is not ruled out: what is still held then is watched.
TEST_END_WAIT_S = 5.0
# How long the session's end waits for what is left.
SESSION_WAIT_S = 20.0
# How often a record still held after a test's end is looked at again (in a
# thread of this session's, while any is left: 0.7 ms a look here, 4 ms more
# with a tc journal of the instance left, at load 3.8, 175 processes).
WATCH_EVERY_S = 0.5
_LOCK = threading.Lock()  # KILLED: the test's end, the watch and a close
_WATCHING = [False]  # a watch thread runs (cleared by it, under _LOCK, as it ends)
_THREAD: list[threading.Thread | None] = [None]  # the last watch thread started
_STOP = threading.Event()  # the session's end: no watch runs past it (stop_watching)


def _live_instances() -> set[str]:
    """Instances of datapaths alive (ownership.py's records, the owner's pid in
    the name), also one still writing its record (.new: a start of the
    instance, review38 H2). A pid reused since reads as alive: the record
    stays (safe)."""
    from chadthrottle.helper.kernel.ownership import MAKING_GLOB, RECORD_GLOB, RUN_DIR

    live = set()
    for path in [*RUN_DIR.glob(RECORD_GLOB), *RUN_DIR.glob(MAKING_GLOB)]:
        # datapath-PID-TOKEN[-INSTANCE].ids, or .new while a starting one writes it
        parts = path.name.removesuffix(".ids").removesuffix(".new").split("-")
        if len(parts) == 4 and parts[1].isdigit() and Path(f"/proc/{parts[1]}").exists():
            live.add(parts[3])
    return live


def _map_lives(map_id: int) -> bool:
    """The map of this id is still a socket_tags map. Not provably gone (the
    kernel refuses for another reason than ENOENT): alive."""
    from chadthrottle.helper.kernel.bpf_syscalls import map_info, open_map
    from chadthrottle.helper.kernel.held_caps import TAGS_MAP_NAME

    try:
        map_fd = open_map(map_id)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        return map_info(map_fd)[4] == TAGS_MAP_NAME  # ids are not reused (cyclic): belt
    finally:
        os.close(map_fd)


def instance_of(path: Path) -> str:
    """caps-INSTANCE.held's INSTANCE."""
    return path.name.removeprefix("caps-").removesuffix(".held")


def abandoned(path: Path) -> bool:
    """The record is nobody's: no live datapath of its instance, and every
    map it names is gone (a record that does not parse names none)."""
    from chadthrottle.helper.kernel.held_caps import parse_held

    if instance_of(path) in _live_instances():
        return False
    try:
        sections = parse_held(path.read_text())
    except FileNotFoundError:
        return False  # gone already: not ours to name
    except (OSError, UnicodeDecodeError, ValueError):
        sections = []
    return not any(_map_lives(section.map_id) for section in sections)


def abandoned_records() -> list[str]:
    """The names of every held-caps record on the machine that is nobody's."""
    from chadthrottle.helper.kernel.ownership import RUN_DIR

    return sorted(path.name for path in RUN_DIR.glob("caps-*.held") if abandoned(path))


def abandoned_owed() -> list[str]:
    """The names of every walks record on the machine that is nobody's
    (tests/support/left_records.py)."""
    return left_records.abandoned_owed(_live_instances())


def _remove_if_abandoned(instance: str) -> bool:
    """The instance's records removed where nobody's (its held caps, walks
    record and tc journals); whether none is left."""
    from chadthrottle.helper.kernel.held_caps import record_of

    others_gone = left_records.remove_abandoned(instance, _live_instances())
    path = record_of(instance)
    if path is None or not path.exists():
        return others_gone
    if not abandoned(path):
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return others_gone


def _sweep() -> None:
    """Remove the records of KILLED that are nobody's (under _LOCK)."""
    for instance in sorted(KILLED):
        if _remove_if_abandoned(instance):
            del KILLED[instance]


def sweep_killed(wait_s: float, closed_since: float = 0.0) -> list[str]:
    """Remove the records of this session's killed helpers that are nobody's,
    waiting up to wait_s for the maps of those closed since closed_since
    (monotonic) to go (older ones are looked at once: a namespace of a wider
    scope may hold theirs); those still held are watched until they go
    (_watch). The instances still held."""

    def swept() -> bool:
        with _LOCK:
            _sweep()
            return all(closed < closed_since for closed in KILLED.values())

    eventually(swept, wait_s, 0.05)
    _watch()
    with _LOCK:
        return sorted(KILLED)


def _watch() -> None:
    """Look at the records still held every WATCH_EVERY_S, in a daemon thread,
    until none is left: each goes a moment after its last map."""
    with _LOCK:
        if not KILLED or _WATCHING[0] or _STOP.is_set():
            return
        _WATCHING[0] = True
        thread = threading.Thread(target=_watching, name="held-records", daemon=True)
        _THREAD[0] = thread
    thread.start()


def _watching() -> None:
    try:
        while True:
            with _LOCK:
                _sweep()
                if not KILLED or _STOP.is_set():
                    _WATCHING[0] = False  # under the lock: a record added after starts another
                    return
            _STOP.wait(WATCH_EVERY_S)  # a poll: the kernel says nothing when a map goes
    except BaseException:
        with _LOCK:
            _WATCHING[0] = False
        raise


def stop_watching(timeout_s: float = 5.0) -> None:
    """The session's end: the watch stopped and joined, and none started
    after (its last sweep_killed waits itself, then the leak check names what
    is left). Until review36b the session's last sweep started a watch that
    ran beside the leak check's grace and on into the interpreter's exit."""
    _STOP.set()
    thread = _THREAD[0]
    if thread is not None:
        thread.join(timeout_s)


def killed_closed(instance: str) -> None:
    """A test closed its SIGKILLed helper of this instance (its programs and
    the machine namespace's tc objects removed): its record goes once nobody's,
    here or after the test (sweep_killed)."""
    with _LOCK:
        KILLED[instance] = time.monotonic()
        if _remove_if_abandoned(instance):  # a close repeated, or a successor's stop took it
            del KILLED[instance]
