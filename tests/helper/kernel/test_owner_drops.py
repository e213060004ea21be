"""The new-owner ring buffer full (acct33): a fork storm while the helper's
reader is held up announces more first sockets than the ring buffer (64 KiB,
2,048 announcements) holds. Until 2026-12-07 the program marked each process
announced all the same: the helper never heard of the rest, their bytes went
to no application, and counted_through_ns vouched for them. The real kernel,
programs and process events; a storm of forked children in a test netns that
each send one datagram over a veth and exit, while nothing reads the ring."""

from __future__ import annotations

import ctypes
import logging
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chadthrottle.contract import ApplicationInfo, BackendInfo
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import UnheardOwner
from chadthrottle.helper.kernel.proc_events import ProcEvents, open_proc_events

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.support.netns import NetnsPair
from tests.support.requirements import require

RING_HOLDS = 2048  # announcements: 64 KiB of 32-byte records (an 8-byte header each)
CHILDREN = 3000
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
    each sending one datagram to the host side and exiting; ended by end()."""

    def __init__(self, pair: NetnsPair, script: Path, lineage: ProcEvents | None = None) -> None:
        self.process = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{pair.peer_ns}", sys.executable, str(script),
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


@pytest.fixture
def storm_script(tmp_path: Path) -> Path:
    path = tmp_path / "owner_storm.py"
    path.write_text(STORM)
    return path


def _episode_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ring buffer was full" in r.getMessage()]


def test_announcements_the_ring_buffer_had_no_room_for_are_heard(
    pair: NetnsPair, datapath: Datapath, storm_script: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chadthrottle.kernel.datapath")
    announced: set[int] = set()
    datapath.watch_new_owners(lambda tgid, cgroup, start: announced.add(tgid))
    datapath.poll_new_owners(0)  # what came before
    storm = Storm(pair, storm_script)
    try:
        assert datapath.poll_new_owners(0) == 0, "announcements lost: the overflow map had room"
        unheard = storm.children - announced
        assert not unheard, f"{len(unheard)} of {CHILDREN} first sockets never heard of"
        assert _episode_said(caplog) == [], "said before the episode was over"
        datapath.poll_new_owners(0)  # none dropped since: the episode is over, said once
        datapath.poll_new_owners(0)
        (said,) = _episode_said(caplog)
        dropped = int(said.split(" full for ")[1].split()[0])
        assert dropped >= CHILDREN - RING_HOLDS, said
        assert "0 could be kept nowhere" in said, said
    finally:
        storm.end()


def _fill_overflow_map(datapath: Datapath) -> int:
    """Fill unheard_owners with announcements of no process: the next ones
    the ring buffer has no room for are lost. How many were written."""
    kept = datapath._maps["unheard_owners"]
    written = 0
    for index in range(datapath._max_entries["unheard_owners"]):
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


def test_lost_announcements_hold_the_word_back_until_a_tick_named_their_bytes(
    pair: NetnsPair, datapath: Datapath, storm_script: Path
) -> None:
    """The overflow map full too: the kernel counts the rest as lost; the
    helper's word (counted_through_ns) stays before them until a tick looked
    for their bytes' owners, which then count for the storm's application."""
    lineage = open_proc_events()
    require(lineage is not None, "needs the kernel's process events connector")
    assert lineage is not None
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())], lineage=lineage)  # fmt: skip
    try:
        datapath.watch_new_owners(engine.note_new_owner)
        _owner_round(engine, datapath, lineage)
        engine.tick()
        _fill_overflow_map(datapath)
        storm = Storm(pair, storm_script, lineage)
        try:
            made_before_ns = time.monotonic_ns()
            lost = _owner_round(engine, datapath, lineage)
            assert lost > 0, "the storm overflowed both"
            engine.tick()  # looks for the lost owners' bytes
            app = _app_of(engine, storm_script)
            assert app is not None
            assert app.counted_through_ns < made_before_ns, "vouched past the loss"
            assert _owner_round(engine, datapath, lineage) == 0
            engine.tick()
            engine.tick()  # the children seen gone: retired into the application
            app = _app_of(engine, storm_script)
            assert app is not None
            assert app.counted_through_ns >= made_before_ns, "the word held back for good"
            assert app.tx_bytes == CHILDREN * WIRE_BYTES, (
                f"{CHILDREN - app.tx_bytes / WIRE_BYTES:.1f} children's datagrams not counted "
                f"({lost} announcements lost)"
            )
        finally:
            storm.end()
    finally:
        lineage.close()
