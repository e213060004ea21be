"""A user's many descriptors hold the engine's lock a bounded time a tick.

A process a rule reaches has its open sockets tagged by a walk of its whole
descriptor table, under the engine's lock. A user chooses how many
descriptors (up to their RLIMIT_NOFILE) and how many new processes: a limited
program of 19,000 descriptors forking every 50 ms held the lock 2.2 s a
tick, and root's calls waited that long (rights28). First tags' and caps
changes' walks now wait in pending_walks.py and each call walks for at most walk_budget_s,
users in turn, a cut walk going on from where it stopped; the rule's reach
says what waits. On the real datapath with real processes: a tick that
meets 8 new processes of 15,000 descriptors each holds the lock about the
budget, not the ~1 s of their walks, and every one's socket, opened last
(the highest descriptor), carries its slot a few ticks later; a new rate
(new caps for every TCP socket) the same (1.18 s in the call before)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import ADMIN_OWNER, ClearLimit
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps
from chadthrottle.helper.kernel.pending_walks import (
    WALK_BUDGET_S,
    PendingWalks,
    owed_text,
    parse_owed,
    record_of,
)
from chadthrottle.helper.kernel.socket_tagging import (
    CUT_CHECK_EVERY_FDS,
    SO_MAX_PACING_RATE,
    UNCAPPED_PACING,
    cap_open_sockets,
)

from tests.helper.kernel.test_leases_during_walks import _a_block_and_a_limit, programs  # noqa: F401
from tests.support.accepting_server import slot_of_socket
from tests.support.waiting import eventually

DESCRIPTORS = 15_000  # each new process's (the helper's tests run with a limit of 20,000)
NEW_PROCESSES = 8  # ~1 s of walks here: 150 ms per 19,000 descriptors
HELD_TICK_S = 0.5  # a tick's hold: the budget (0.1 s) and the tick's own work
HOLDER = (
    "import os, socket, sys, time\n"
    "null = os.open('/dev/null', os.O_RDONLY)\n"
    "held = [os.dup(null) for _ in range(int(sys.argv[1]))]\n"
    "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"  # paced to the rule's rate
    "print('ready', sock.fileno(), tcp.fileno(), sep='\\n', flush=True)\n"
    "time.sleep(600)\n"
)


def test_users_take_turns_and_the_first_of_a_round_changes() -> None:
    walks = PendingWalks()
    for tgid in (11, 12, 13):
        walks.add(tgid, 1, 5, turn_uid=1000)  # one user's backlog...
    walks.add(21, 1, 6, turn_uid=1001)  # ...and another's one process, added after it
    walks.add(31, 1, 7, turn_uid=0)
    assert [w.tgid for w in walks.in_turn()] == [31, 11, 21, 12, 13]
    assert [w.tgid for w in walks.in_turn()] == [11, 21, 31, 12, 13]  # who went first goes last
    assert [w.tgid for w in walks.in_turn()] == [21, 31, 11, 12, 13]
    walks.add(11, 2, 5, turn_uid=1000)  # tagged again: its walk is the new one's, at its user's end
    walks.drop(21)
    assert [w.tgid for w in walks.in_turn()] == [31, 12, 13, 11]
    assert walks.slots() == {12: 5, 13: 5, 11: 5, 31: 7}


def test_a_users_tag_walks_take_turns_with_its_sweeps() -> None:
    """A gone process's sweep of its user's processes (or a vet of every
    process) does not hold a new tag of that user behind it all (walk34)."""
    walks = PendingWalks()
    gone = walks.add(9, 1, 0, turn_uid=0, draining=[4])
    walks.drop(9)
    walks.sweep(gone, [(1, 1, 0), (2, 1, 0), (3, 1, 0)])  # root's processes swept for slot 4
    walks.add(40, 1, 5, turn_uid=0)  # a new rule's process, after them
    walks.add(41, 1, 5, turn_uid=0)
    assert [w.tgid for w in walks.in_turn()] == [40, 1, 41, 2, 3]


def _pacing(pid: int, fd: int) -> int:
    """SO_MAX_PACING_RATE of pid's socket fd."""
    pidfd = os.pidfd_open(pid)
    try:
        local = pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)
    with socket.socket(fileno=local) as sock:
        return int(
            struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 4))[0]
        )


def _walked(datapath: Datapath, tables: dict[int, int]) -> int:
    """The descriptors the walks of tables' processes (pid -> its table's
    size) have read: a walk's cursor, a walk ended its whole table."""
    waiting = datapath._pending_walks
    return sum(walk.next_fd if (walk := waiting.get(pid)) is not None else size
               for pid, size in tables.items())  # fmt: skip


def test_a_tick_walks_new_processes_for_its_budget_and_the_rest_later(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    """Judged by work, not by the clock (another lane beside it made one tick
    779 ms of wall time, walks35): the tick's own CPU time (its thread's)
    stays under HELD_TICK_S, which the walks of all the tables do not (~1 s
    here), each tick reads part of them, not all, and every tick gets on
    (a walk's cursor advances: at least CUT_CHECK_EVERY_FDS - 1 descriptors
    a tick while only these walks wait)."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    limited = f"script:{holder_script}"
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        new: dict[int, int] = {}  # pid -> its socket's descriptor
        tables: dict[int, int] = {}  # pid -> its table's size (its TCP socket is the highest)
        for _ in range(NEW_PROCESSES):
            process = subprocess.Popen([sys.executable, str(holder_script), str(DESCRIPTORS)],
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
            running.append(process)
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            new[process.pid] = int(process.stdout.readline())
            tables[process.pid] = int(process.stdout.readline()) + 1
        whole = sum(tables.values())

        cpu = time.thread_time()
        engine.tick()  # identifies the new processes: their walks wait, a budget's worth done
        cpu = time.thread_time() - cpu
        walked = _walked(datapath, tables)
        print(f"first tick {cpu * 1000:.0f} ms of CPU, {walked} of {whole} descriptors read, "
              f"{len(datapath.pending_walks())} walks left (load {os.getloadavg()[0]:.1f})")  # fmt: skip
        assert cpu < HELD_TICK_S, (
            f"a tick held the lock {cpu:.2f} s of CPU over {NEW_PROCESSES} x {DESCRIPTORS} descriptors"
        )
        hold = engine._applier.hold
        assert all(hold.slot_of_process(pid) for pid in new), "not tagged for new sockets"
        assert set(datapath.pending_walks()) <= set(new) and datapath.pending_walks(), (
            "every walk done within the budget: nothing proved"
        )
        assert 0 < walked < whole, (walked, whole)
        (app,) = [a for a in engine.list_applications() if a.id == limited]
        assert "not held to it yet" in app.up_limit_reach, app.up_limit_reach

        ticks, most_cpu = 1, cpu
        most_ticks = whole // (CUT_CHECK_EVERY_FDS - 1) + NEW_PROCESSES  # a hang's guard
        while datapath.pending_walks():
            assert ticks < most_ticks, f"{len(datapath.pending_walks())} walks still wait"
            only_ours = set(datapath.pending_walks()) <= set(new)
            before = walked
            cpu = time.thread_time()
            engine.tick()
            cpu = time.thread_time() - cpu
            walked = _walked(datapath, tables)
            most_cpu = max(most_cpu, cpu)
            ticks += 1
            assert cpu < HELD_TICK_S, f"tick {ticks}: {cpu:.2f} s of CPU"
            if only_ours:  # the tick's first walk is one of these: it reads on
                assert walked >= before + CUT_CHECK_EVERY_FDS - 1, (ticks, before, walked)
        print(f"{ticks} ticks, the most CPU {most_cpu * 1000:.0f} ms "
              f"(budget {WALK_BUDGET_S * 1000:.0f} ms of wall time)")  # fmt: skip
        assert walked == whole
        map_fd = datapath._maps["socket_tags"].fd
        slots = {pid: slot_of_socket(map_fd, pid, fd) for pid, fd in new.items()}
        assert set(slots.values()) == {hold.slot_of_process(next(iter(new)))}, slots
        (app,) = [a for a in engine.list_applications() if a.id == limited]
        assert "not held to it yet" not in app.up_limit_reach
        assert engine.set_limit(limited, Direction.UP, 200_000, 0) == limited


def test_a_users_rate_change_walks_for_the_budget_and_the_rest_later(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    """A new rate changes the slot's caps: every tagged process's TCP sockets
    were capped again in the call, under the lock, however many descriptors
    (a user may change their own rule's rate as often as they like)."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    limited = f"script:{holder_script}"
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        tcp: dict[int, int] = {}  # pid -> its TCP socket's descriptor (its highest)
        for _ in range(NEW_PROCESSES):
            process = subprocess.Popen([sys.executable, str(holder_script), str(DESCRIPTORS)],
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
            running.append(process)
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            process.stdout.readline()
            tcp[process.pid] = int(process.stdout.readline())
        engine.tick()
        while datapath.pending_walks():
            engine.tick()
        most_ticks = (
            sum(tcp.values()) // (CUT_CHECK_EVERY_FDS - 1) + NEW_PROCESSES
        )  # a hang's guard
        for rate in (300_000, 400_000):
            cpu = time.thread_time()  # the call's own work, not the wall clock load stretches
            assert engine.set_limit(limited, Direction.UP, rate, 0) == limited
            cpu = time.thread_time() - cpu
            print(f"a new rate: {cpu * 1000:.0f} ms of CPU, "
                  f"{len(datapath.pending_walks())} walks left")  # fmt: skip
            assert cpu < HELD_TICK_S, f"a rate change held the lock {cpu:.2f} s of CPU"
            assert datapath.pending_walks(), "every socket capped within the budget: nothing proved"
            ticks = 0
            while datapath.pending_walks():
                assert ticks < most_ticks, f"{len(datapath.pending_walks())} walks still wait"
                engine.tick()
                ticks += 1
            paced = {_pacing(pid, fd) for pid, fd in tcp.items()}
            assert len(paced) == 1 and paced != {UNCAPPED_PACING}, paced
            if rate == 300_000:
                first = paced
            else:
                assert paced != first, "the second rate did not reach the sockets"


def test_a_cut_walk_lists_the_table_once(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    """Each part of a cut walk listed and sorted the whole table again
    before reading on (1.35 us a descriptor here: 27 ms for 19,907): past a
    budget shorter than that, every call read 16 descriptors, and a table of
    524,288 would have cost ~0.7 s of the lock a call for ~32,000 calls
    (review31). A budget under one listing: each part costs a fraction of
    one listing's CPU time (this thread's, which load does not stretch as it
    does the wall clock and so the count of calls, walks35), each reads on,
    and the walk ends, its socket (the highest descriptor) tagged."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        process = subprocess.Popen([sys.executable, str(holder_script), "19000"],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        running.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        sock_fd = int(process.stdout.readline())
        table = int(process.stdout.readline()) + 1  # its TCP socket is the highest descriptor
        datapath.walk_budget_s = 0.005  # under one listing of its table
        engine.tick()  # tags it: its walk waits, a budget's worth done
        walk = datapath._pending_walks.get(process.pid)
        assert walk is not None, "walked at once: nothing proved"
        listings = []
        for _ in range(3):  # the least: the first lists a table /proc has not read yet
            began = time.thread_time()
            os.listdir(f"/proc/{process.pid}/fd")
            listings.append(time.thread_time() - began)
        listing = min(listings)
        most_parts = -(-table // (CUT_CHECK_EVERY_FDS - 1))
        calls, at, cpu = 0, walk.next_fd, 0.0
        while walk is not None:
            assert calls < most_parts, f"{calls} parts and the walk goes on at {at}"
            began = time.thread_time()
            datapath.walk_pending()
            cpu += time.thread_time() - began
            calls += 1
            assert calls < 5 or cpu / calls < listing / 2, (
                f"{calls} parts of {cpu / calls * 1000:.1f} ms of CPU: a listing is {listing * 1000:.1f}"
            )
            walk = datapath._pending_walks.get(process.pid)
            if walk is not None:
                assert walk.next_fd >= at + CUT_CHECK_EVERY_FDS - 1, (calls, at, walk.next_fd)
                at = walk.next_fd
        print(f"walked in {calls} more calls of {datapath.walk_budget_s * 1000:.0f} ms, "
              f"{cpu / calls * 1000:.1f} ms of CPU each, a listing {listing * 1000:.1f} ms")  # fmt: skip
        slot = engine._applier.hold.slot_of_process(process.pid)
        assert (
            slot and slot_of_socket(datapath._maps["socket_tags"].fd, process.pid, sock_fd) == slot
        )


def test_a_retags_and_an_untags_old_slot_drains_until_its_walk_ends() -> None:
    walks = PendingWalks()
    walks.add(11, 1, 5, turn_uid=1000)  # a first tag: its sockets carry no slot yet
    assert walks.draining_slots() == set()
    walks.add(11, 1, 0, turn_uid=1000, draining={5})  # cleared before it was walked
    assert walks.draining_slots() == {5}
    walks.add(11, 1, 6, turn_uid=1000)  # another rule: 5 drains on in its walk
    assert walks.draining_slots() == {5}
    walks.add(11, 1, 5, turn_uid=1000, draining={6})  # back to 5: it tags them with 5
    assert walks.draining_slots() == {6}
    walks.add(12, 1, 0, turn_uid=1001, draining={7})
    assert walks.draining_slots() == {6, 7}
    walks.drop(11)
    assert walks.draining_slots() == {7}
    assert walks.slots() == {12: 0}


def test_what_walks_owe_is_kept_for_a_successor(tmp_path: Path) -> None:
    record = tmp_path / "walks.owed"
    walks = PendingWalks(record)
    walks.add(
        os.getpid(), read_start(os.getpid()) or 0, 0, turn_uid=0, made_by=1000
    ).was = SocketCaps(pacing_bps=1_000_000)
    walks.add(2, 99, 0, turn_uid=0).was = SocketCaps(window_bps=8_000_000)  # not running
    walks.add(3, 1, 5, turn_uid=0)  # a first tag owes no caps
    walks.save()
    assert parse_owed(record.read_text()) == walks.owed()
    assert len(walks.owed()) == 2
    successor = PendingWalks(record)
    assert successor.resume() == 1  # pid 2 with that start does not run
    (walk,) = successor.in_turn()
    assert (walk.tgid, walk.slot, walk.capped_only, walk.made_by) == (os.getpid(), 0, True, 1000)
    assert walk.was == SocketCaps(pacing_bps=1_000_000)
    assert len(parse_owed(record.read_text())) == 1  # the successor's own now
    successor.forget_owed()
    assert not record.exists()
    assert PendingWalks(record).resume() == 0


def test_a_cut_record_loses_its_last_line_only() -> None:
    text = owed_text([(10, 20, SocketCaps(1, 2), None), (11, 21, SocketCaps(3, 4), 1000)])
    assert parse_owed(text) == [(10, 20, SocketCaps(1, 2), None), (11, 21, SocketCaps(3, 4), 1000)]
    assert parse_owed(text[:-6] + "\n12 x 1 2 3\n-4 1 1 1 1\n") == [
        (10, 20, SocketCaps(1, 2), None)
    ]


def test_a_cleared_rules_untag_walks_later_and_its_slot_drains_until_then(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    """A cleared rule untagged every process's sockets in the call, under the
    lock (nobody setting and clearing their rule in turn held root's calls
    1.5 s). Now the untag waits like a first tag; meanwhile the sockets carry
    the old slot, so no other rule gets it (it would limit and count them)
    until their walk ends; then their pacing is lifted too."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    limited = f"script:{holder_script}"
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        process = subprocess.Popen([sys.executable, str(holder_script), str(DESCRIPTORS)],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        running.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        process.stdout.readline()
        tcp_fd = int(process.stdout.readline())
        engine.tick()
        while datapath.pending_walks():
            engine.tick()
        key = (limited, ADMIN_OWNER)
        slot = engine._applier.slots.slot_of(key)
        map_fd = datapath._maps["socket_tags"].fd
        assert slot and slot_of_socket(map_fd, process.pid, tcp_fd) == slot
        assert _pacing(process.pid, tcp_fd) != UNCAPPED_PACING

        datapath.walk_budget_s = 0.005  # under one listing of its table
        (outcome,) = engine.apply_changes([ClearLimit(limited, (Direction.UP,))])
        assert outcome == limited, outcome
        assert process.pid in datapath.pending_walks(), "untagged at once: nothing proved"
        assert slot_of_socket(map_fd, process.pid, tcp_fd) == slot  # not walked yet
        assert datapath.draining_slots() == {slot}
        engine.tick()
        assert engine._applier.slots.slot_of(key) == slot, "a draining slot was released"
        assert engine._applier.slots.acquire(("another", ADMIN_OWNER)) != slot
        calls = 0
        while datapath.pending_walks():
            assert calls < 200, f"{calls} calls and the untag goes on"
            datapath.walk_pending()
            calls += 1
        assert slot_of_socket(map_fd, process.pid, tcp_fd) == 0
        assert _pacing(process.pid, tcp_fd) == UNCAPPED_PACING

        def released() -> bool:  # once every process is swept and a dump finds it on none
            engine.tick()
            return engine._applier.slots.slot_of(key) is None

        datapath.walk_budget_s = WALK_BUDGET_S  # the sweep of every process at the usual pace
        assert eventually(released, 10.0), "not released once drained"
        assert datapath.draining_slots() == set()


def test_a_successor_lifts_the_caps_a_killed_helpers_walks_owed(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    """A helper killed mid-walk (a cleared rule's untag, a new rate's caps)
    leaves sockets paced that no rule holds any more: its record names
    them, and the next helper of that instance lifts them at its start."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    process = subprocess.Popen([sys.executable, str(holder_script), "10"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    instance = f"{os.getpid():x}e30"  # hex, as ownership.journal_instance
    record = record_of(instance)
    assert record is not None
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        process.stdout.readline()
        tcp_fd = int(process.stdout.readline())
        paced = SocketCaps(pacing_bps=1_000_000)
        assert cap_open_sockets(process.pid, paced, NO_CAPS) == 1  # as the killed one left it
        assert _pacing(process.pid, tcp_fd) != UNCAPPED_PACING
        killed = PendingWalks(record)  # what it kept before its walk
        killed.add(process.pid, read_start(process.pid) or 0, 0, turn_uid=0).was = paced
        killed.save()
        successor = Datapath(cache_dir=kernel_ready, instance=instance)
        successor.open()
        try:
            successor.adopt_open_sockets([process.pid])
            assert successor.pending_walks() == {process.pid: 0}
            while successor.walk_pending():
                pass
            assert _pacing(process.pid, tcp_fd) == UNCAPPED_PACING
            assert not record.exists(), "owed nothing, kept"
        finally:
            successor.close()
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        record.unlink(missing_ok=True)


def test_caps_changed_under_way_cap_the_part_walked_after_not_restart_the_walk() -> None:
    """A recap restarted a walk under way from its first descriptor: caps
    that change each tick (a divided limit's shares) kept a large table's
    tag from ever ending, and its old slot draining."""
    walks = PendingWalks()
    walk = walks.add(11, 1, 5, turn_uid=0, draining={4})
    walk.next_fd = 9_000  # cut there
    walks.recap(11, 1, 5, SocketCaps(pacing_bps=1_000), 0)
    assert (walk.next_fd, walk.capped_only, walk.recap_done) == (9_000, False, True)
    assert not walks.ended(walk)  # its tags done: a caps pass of the part it did
    assert (walk.next_fd, walk.capped_only, walks.draining_slots()) == (0, True, set())
    assert walks.ended(walk)
    assert walks.slots() == {}
    walks.recap(12, 1, 5, SocketCaps(pacing_bps=1_000), 0)  # nothing under way: a caps pass
    assert walks.get(12) is not None and walks.get(12).capped_only  # type: ignore[union-attr]


def test_a_gone_untags_slots_drain_on_in_a_sweep_of_its_users_processes() -> None:
    """Its process exited before its untag walk ended: a child it forked
    may hold its sockets, carrying the slot. Each process of its user gets a
    sweep (only sockets carrying the slot retagged), one walking already a
    sweep after its walk (not a restart: exits in a stream would keep it
    from ending); the slot drains until they end."""
    walks = PendingWalks()
    gone = walks.add(11, 1, 0, turn_uid=1000, made_by=1000, draining={5})
    walks.drop(11)
    caps_pass = walks.add(13, 1, 6, turn_uid=1000)
    caps_pass.capped_only, caps_pass.next_fd = True, 500
    walks.sweep(gone, [(12, 1, 0), (13, 1, 6)])
    assert walks.draining_slots() == {5}
    child = walks.get(12)
    assert child is not None and (child.sweep, child.slot, child.made_by) == ({5}, 0, 1000)
    assert (caps_pass.capped_only, caps_pass.next_fd, caps_pass.draining) == (True, 500, {5})
    assert not walks.ended(caps_pass)  # not restarted: a sweep of its table after
    assert (caps_pass.sweep, caps_pass.next_fd, caps_pass.capped_only) == ({5}, 0, False)
    assert walks.ended(caps_pass)
    walks.drop(12)
    assert walks.draining_slots() == set()
    walks.sweep(walks.add(14, 1, 5, turn_uid=0), [(15, 1, 0)])  # a first tag drains none
    assert walks.get(15) is None


def test_a_walks_first_part_does_not_list_the_whole_table(kernel_ready: Path) -> None:
    """A walk's first part listed the whole table (and sorted it) before its
    first look at the clock: ~1.1 us a descriptor here, ~0.5 s of the lock at
    524,288 (systemd's hard limit), and once per call where a process with
    such a table forks a child a tick, each child's first walk one listing
    (review33b R3). The table is read on from next_fd a kernel buffer at a
    time: a first part with a 1 ms budget costs a fraction of one listing,
    and the walk still ends, its socket (the highest descriptor) tagged.
    Judged by CPU time (this thread's: the first part, a listing) and by the
    cursor, not by the wall clock or a count of calls that load breaks
    (walks35): each part reads on at least CUT_CHECK_EVERY_FDS - 1
    descriptors, so the walk ends within the parts that follow from that."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        with _holder(19000) as (holder, tcp_fd):
            table = tcp_fd + 1  # the highest descriptor
            start = read_start(holder.pid) or 0
            datapath.walk_budget_s = 0.001
            listings, first_parts = [], []
            for _ in range(3):
                began = time.thread_time()
                os.listdir(f"/proc/{holder.pid}/fd")
                listings.append(time.thread_time() - began)
                datapath.set_process_slot(holder.pid, 7, start, later=True)  # a walk from fd 0
                began = time.thread_time()
                datapath.walk_pending()
                first_parts.append(time.thread_time() - began)
                walk = datapath._pending_walks.get(holder.pid)
                assert walk is not None and walk.next_fd < table, "walked whole: nothing proved"
            print(f"one listing {min(listings) * 1000:.1f} ms of CPU, a first part"
                  f" {min(first_parts) * 1000:.1f} ms (load {os.getloadavg()[0]:.1f})")  # fmt: skip
            assert min(first_parts) < min(listings) / 2, (first_parts, listings)
            calls = _walk_to_its_end(datapath, holder.pid, table, walk.next_fd)
            print(f"walked in {calls} more parts")
            assert slot_of_socket(datapath._maps["socket_tags"].fd, holder.pid, tcp_fd) == 7
    finally:
        datapath.close()


def test_a_slot_let_go_drains_until_a_dump_says_clean_and_a_slot_given_again_owes_no_sweep() -> (
    None
):
    """PendingWalks.vet (rights31): every process swept for the slot let go,
    the slot draining until its sweeps end and a dump finds it on no socket;
    given to a process again meanwhile, its sweeps are not owed."""
    walks = PendingWalks()
    walks.add(11, 1, 5, turn_uid=1000)  # a tag walk under way: swept after it
    walks.vet({3}, [(11, 1, 5), (12, 1, 0), (13, 1, 0)])
    assert walks.draining_slots() == {3}
    assert walks.dump_due(0.0) == set(), "dumped before its sweeps ended"
    assert walks.slots() == {11: 5, 12: 0, 13: 0}
    walks.forget_vet(3)  # the same rule's slot, given again (cleared and set in turn)
    assert walks.slots() == {11: 5}, "swept for a slot in use again"
    assert walks.draining_slots() == set()
    walks.vet({4}, [(12, 1, 0)])
    walk = walks.get(12)
    assert walk is not None and walk.sweep == {4} and walk.vet
    walks.drop(12)  # its sweep ended
    assert walks.dump_due(0.0) == {4}
    walks.vetted(4, again_at=1.0)  # a dump found a socket still carrying it
    assert walks.dump_due(0.5) == set() and walks.dump_due(1.0) == {4}
    assert not walks.clean(4)
    walks.vetted(4)
    assert walks.draining_slots() == set()
    assert walks.clean(4) and not walks.clean(4), "clean once: let go again, vetted anew"


def test_a_carrier_found_again_is_swept_for_only_at_the_flight_wait_and_the_dumps_back_off() -> (
    None
):
    """PendingWalks.dumped (rights31b, review34b's R2): a socket in a file a
    dump finds is swept for once; found again after that sweep it is in no
    table (in flight): not swept for at every dump (each swept every process
    on the machine), but at a flight wait doubling to again_max_s, for every
    such slot at once; the dumps back off the same way; a new carrier, even
    of a slot in flight, is swept for at once."""
    walks = PendingWalks()
    walks.again_max_s = 8.0
    walks.vet({3, 4}, [])
    assert walks.dump_due(0.0) == {3, 4}
    assert walks.dumped({3, 4}, {3: {30}, 4: {40}}, set(), False, 0.0) == {3, 4}, "new: swept"
    walks.vet({3, 4}, [])  # (Datapath does: the sweep; here no process)
    assert walks.dumped({3, 4}, {3: {30}, 4: {40}}, set(), False, 0.5) == set(), "no flight yet"
    assert walks.in_flight() == {3, 4}
    walks.vetted(3, again_at=10.0)  # their dumps due after the flight wait
    walks.vetted(4, again_at=10.0)
    assert walks.dump_due(2.4) == set() and walks.dump_due(2.5) == {3, 4}, "the flight's dump"
    assert walks.dump_due(1.4) == set() and walks.dump_due(2.5) == {3, 4}, "waits 2 s"
    assert walks.dumped({3, 4}, {3: {30}, 4: {40}}, set(), False, 2.5) == {3, 4}, "flight wait"
    walks.vet({3, 4}, [])
    sweeps, now = 0, 2.6
    while now < 60.0:  # found again and again: the dumps and the sweeps back off to 8 s
        if walks.dump_due(now):
            sweeps += bool(walks.dumped({3, 4}, {3: {30}, 4: {40}}, set(), False, now))
        now += 0.1
    assert 5 <= sweeps <= 60 / 8 + 1, sweeps
    assert walks.dumped({3, 4}, {3: {30, 31}, 4: {40}}, set(), False, now) == {3}, "new carrier"
    assert walks.dumped({3, 4}, {4: {40}}, {3}, False, now + 9) == {4}
    assert walks.in_flight() == {4}, "3 is carried by a queued connection only"
    assert walks.draining_slots() == {3, 4}
    walks.dumped({3, 4}, {}, set(), False, now + 20)
    assert walks.draining_slots() == set() and walks.in_flight() == set()
    assert walks.clean(3) and walks.clean(4)


def test_a_call_past_its_deadline_before_its_first_walk_still_reads_on(kernel_ready: Path) -> None:
    """A call whose deadline passed before its first walk (its thread
    preempted there: 5 of 4,691 calls of 1 ms at load 12.7) read nothing,
    and a walk could wait call after call (walks35). A budget of 0 is that
    case every call: each still reads at least CUT_CHECK_EVERY_FDS - 1
    descriptors, and the walk ends, its socket (the highest) tagged."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    try:
        with _holder(200) as (holder, tcp_fd):
            datapath.walk_budget_s = 0.0
            datapath.set_process_slot(holder.pid, 7, read_start(holder.pid) or 0, later=True)
            calls = _walk_to_its_end(datapath, holder.pid, tcp_fd + 1, 0)
            assert calls > 1, "walked whole in one call: nothing proved"
            assert slot_of_socket(datapath._maps["socket_tags"].fd, holder.pid, tcp_fd) == 7
    finally:
        datapath.close()


@contextlib.contextmanager
def _holder(descriptors: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process holding about that many descriptors (HOLDER), its TCP
    socket the highest: it and that descriptor; killed at the end."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(descriptors)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        holder.stdout.readline()
        yield holder, int(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def _walk_to_its_end(datapath: Datapath, pid: int, table: int, at: int) -> int:
    """walk_pending until pid's walk (now at descriptor at) ended, each call
    reading on at least CUT_CHECK_EVERY_FDS - 1 descriptors, so within the
    calls a table of that many descriptors takes; how many calls."""
    most_parts = -(-table // (CUT_CHECK_EVERY_FDS - 1))
    calls = 0
    while datapath._pending_walks.get(pid) is not None:
        assert calls < most_parts, f"{calls} calls and the walk stands at {at}"
        datapath.walk_pending()
        calls += 1
        walk = datapath._pending_walks.get(pid)
        if walk is not None:
            assert walk.next_fd >= at + CUT_CHECK_EVERY_FDS - 1, (calls, at, walk.next_fd)
            at = walk.next_fd
    return calls
