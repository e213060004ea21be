"""The new-owner ring buffer full (acct33): a fork storm while the helper's
reader is held up announces more first sockets than the ring buffer (64 KiB,
2,048 announcements) holds. Until 2026-12-07 the program marked each process
announced all the same: the helper never heard of the rest, their bytes went
to no application, and counted_through_ns vouched for them. The real kernel,
programs and process events; one storm of forked children in a test netns that
each send one datagram over a veth and exit, while nothing reads the ring, with
the overflow map left room for some of the rest only: both tests read it (one
storm of 2,448 children, not two of 3,000: 4.2 + 6.0 s before, acct34)."""

from __future__ import annotations

import ctypes
import logging
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.contract import ApplicationInfo, BackendInfo
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import UnheardOwner
from chadthrottle.helper.kernel.proc_events import ProcEvents, open_proc_events

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.support.netns import NetnsPair, netns_pair
from tests.support.requirements import require, require_program, require_root

RING_HOLDS = 2048  # announcements: 64 KiB of 32-byte records (an 8-byte header each)
KEPT_ROOM = 300  # the overflow map's room left: kept, the rest lost (others' sockets take some)
LOST_AT_LEAST = 100
CHILDREN = RING_HOLDS + KEPT_ROOM + LOST_AT_LEAST
PAYLOAD = 1000
WIRE_BYTES = PAYLOAD + 28  # with the IPv4 and UDP headers: what the datapath counts
FAKE_TGID = 4_194_400  # past any pid_max: the overflow map filled by hand names no process

STORM = textwrap.dedent(
    """
    import os, socket, sys
    address, children = (sys.argv[1], 9), int(sys.argv[2])
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one:
                one.sendto(b"x" * {payload}, address)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    print(" ".join(map(str, pids)), flush=True)
    sys.stdin.readline()  # the parent stays: it names its children that exited
    """
).format(payload=PAYLOAD)


class Storm:
    """CHILDREN forked children of one script in the pair's peer namespace,
    each sending one datagram to the host side and exiting; ended by end().
    The script runs without site (-S -I): a parent of fewer pages forks in
    about half the time (2,448 children: 4.5 -> 2.1 s here)."""

    def __init__(self, pair: NetnsPair, script: Path, lineage: ProcEvents | None = None) -> None:
        self.process = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{pair.peer_ns}", sys.executable, "-S", "-I", str(script),
             pair.host_addr, str(CHILDREN)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.process.stdout is not None
        # the fork events, read as the helper's owner thread reads them (only
        # the ring buffer is left unread)
        while not select.select([self.process.stdout], [], [], 0.05)[0]:
            assert self.process.poll() is None, "the storm died"
            if lineage is not None:
                lineage.drain()
        self.children = {int(pid) for pid in self.process.stdout.readline().split()}
        assert len(self.children) == CHILDREN

    def end(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


class _Said(logging.Handler):
    """What the datapath's logger said (the storm is the module's: caplog is a test's)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def episodes(self) -> list[str]:
        return [m for m in self.messages if "ring buffer was full" in m]


def _fill_overflow_map(datapath: Datapath, room: int) -> int:
    """Fill unheard_owners but for room entries with announcements of no
    process: past that room, those the ring buffer has no room for are lost.
    How many were written."""
    kept = datapath._maps["unheard_owners"]
    written = 0
    for index in range(datapath._max_entries["unheard_owners"] - room):
        kept.set(UnheardOwner(start=1, tgid=FAKE_TGID + index), ctypes.c_uint64(0))
        written += 1
    return written


def _owner_round(engine: AdminEngine, datapath: Datapath, lineage: ProcEvents) -> int:
    """One round of RunningEngine._watch_owners: the poll, the process events, the word."""
    began_ns = time.monotonic_ns()
    lost = datapath.poll_new_owners(0)
    lineage.drain()
    if lost:
        engine.note_owners_lost(lost)
    engine.note_owners_read(began_ns)
    return lost


def _app_of(engine: AdminEngine, script: Path) -> ApplicationInfo | None:
    found = [a for a in engine.list_applications() if a.id == f"script:{script}"]
    return found[0] if found else None


@dataclass
class Outcome:
    """What the helper's side heard and said through one storm."""

    children: set[int]
    heard_first: set[int]  # the tgids announced by the first poll after the storm
    lost: int  # what that poll said was kept nowhere
    said_at_first: list[str]  # the episode's WARNING, by then (none: it is not over)
    said: list[str]  # ... after the next poll (none dropped since: over)
    word_after_loss: int  # the storm's application's counted_through_ns after the next tick
    word_at_end: int  # ... once a later round and ticks ran
    tx_bytes: int  # the application's bytes, then
    made_before_ns: int  # a time after the storm's last socket


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """One storm against the real datapath and an engine: CHILDREN first
    sockets while nothing reads the ring buffer, the overflow map with
    KEPT_ROOM room: the ring keeps RING_HOLDS, the map about KEPT_ROOM (the
    machine's other first sockets take some of either), the rest are lost."""
    require_root()
    require_program("nsenter")
    try:
        import bcc  # noqa: F401
    except ImportError:
        require(False, "needs bcc (Debian: python3-bpfcc) visible to this Python")
    lineage = open_proc_events()
    require(lineage is not None, "needs the kernel's process events connector")
    assert lineage is not None
    script = tmp_path_factory.mktemp("owner_storm") / "owner_storm.py"
    script.write_text(STORM)
    said = _Said()
    logger = logging.getLogger("chadthrottle.kernel.datapath")
    level = logger.level
    logger.addHandler(said)
    logger.setLevel(logging.WARNING)
    datapath = Datapath(cache_dir=Path("/var/cache/chadthrottle"))
    datapath.open()
    try:
        with netns_pair() as pair:
            engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                                 lambda active: [BackendInfo("tc", True, "", ())], lineage=lineage)  # fmt: skip
            heard: set[int] = set()

            def on_new_owner(tgid: int, cgroup: int, start: int) -> None:
                heard.add(tgid)
                engine.note_new_owner(tgid, cgroup, start)

            datapath.watch_new_owners(on_new_owner)
            _owner_round(engine, datapath, lineage)
            engine.tick()
            _fill_overflow_map(datapath, KEPT_ROOM)
            storm = Storm(pair, script, lineage)
            try:
                made_before_ns = time.monotonic_ns()
                heard.clear()
                lost = _owner_round(engine, datapath, lineage)
                heard_first, said_at_first = set(heard), said.episodes()
                engine.tick()  # looks for the lost owners' bytes
                app = _app_of(engine, script)
                assert app is not None
                word_after_loss = app.counted_through_ns
                assert _owner_round(engine, datapath, lineage) == 0
                engine.tick()
                engine.tick()  # the children seen gone: retired into the application
                app = _app_of(engine, script)
                assert app is not None
                yield Outcome(storm.children, heard_first, lost, said_at_first, said.episodes(),
                              word_after_loss, app.counted_through_ns, app.tx_bytes,
                              made_before_ns)  # fmt: skip
            finally:
                storm.end()
    finally:
        datapath.close()
        lineage.close()
        logger.removeHandler(said)
        logger.setLevel(level)


def test_announcements_the_ring_buffer_had_no_room_for_are_heard(outcome: Outcome) -> None:
    """Those the ring had no room for and the overflow map kept are heard at
    the next poll; only those kept nowhere are not, and they are counted;
    the episode is said once, when over."""
    heard = outcome.children & outcome.heard_first
    assert len(heard) > RING_HOLDS, (
        f"{len(outcome.children) - len(heard)} of {CHILDREN} first sockets never heard of "
        f"(the ring holds {RING_HOLDS})"
    )
    assert 0 < len(outcome.children) - len(heard) <= outcome.lost, (
        f"{len(outcome.children) - len(heard)} never heard of, {outcome.lost} said lost"
    )
    assert outcome.said_at_first == [], "said before the episode was over"
    (said,) = outcome.said
    dropped = int(said.split(" full for ")[1].split()[0])
    assert dropped >= CHILDREN - RING_HOLDS, said
    assert f"{outcome.lost} could be kept nowhere" in said, said


def test_lost_announcements_hold_the_word_back_until_a_tick_named_their_bytes(
    outcome: Outcome,
) -> None:
    """The kernel counted some as lost; the helper's word (counted_through_ns)
    stays before them until a tick looked for their bytes' owners, which then
    count for the storm's application."""
    assert outcome.lost >= LOST_AT_LEAST // 2, "the storm overflowed both"
    assert outcome.word_after_loss < outcome.made_before_ns, "vouched past the loss"
    assert outcome.word_at_end >= outcome.made_before_ns, "the word held back for good"
    assert outcome.tx_bytes == CHILDREN * WIRE_BYTES, (
        f"{CHILDREN - outcome.tx_bytes / WIRE_BYTES:.1f} children's datagrams not counted "
        f"({outcome.lost} announcements lost)"
    )
