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

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.pending_walks import WALK_BUDGET_S, PendingWalks
from chadthrottle.helper.kernel.socket_tagging import SO_MAX_PACING_RATE, UNCAPPED_PACING

from tests.helper.kernel.test_leases_during_walks import _a_block_and_a_limit, programs  # noqa: F401
from tests.support.accepting_server import slot_of_socket

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
        walks.add(tgid, 1, 5, uid=1000)  # one user's backlog...
    walks.add(21, 1, 6, uid=1001)  # ...and another's one process, added after it
    walks.add(31, 1, 7, uid=0)
    assert [w.tgid for w in walks.in_turn()] == [31, 11, 21, 12, 13]
    assert [w.tgid for w in walks.in_turn()] == [11, 21, 31, 12, 13]  # who went first goes last
    assert [w.tgid for w in walks.in_turn()] == [21, 31, 11, 12, 13]
    walks.add(11, 2, 5, uid=1000)  # tagged again: its walk is the new one's, at its user's end
    walks.drop(21)
    assert [w.tgid for w in walks.in_turn()] == [31, 12, 13, 11]
    assert walks.slots() == {12: 5, 13: 5, 11: 5, 31: 7}


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


def test_a_tick_walks_new_processes_for_its_budget_and_the_rest_later(
    kernel_ready: Path,
    programs: tuple[Path, Path],  # noqa: F811
) -> None:
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    limited = f"script:{holder_script}"
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        new: dict[int, int] = {}  # pid -> its socket's descriptor
        for _ in range(NEW_PROCESSES):
            process = subprocess.Popen([sys.executable, str(holder_script), str(DESCRIPTORS)],
                                       stdout=subprocess.PIPE, text=True)  # fmt: skip
            running.append(process)
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            new[process.pid] = int(process.stdout.readline())
            process.stdout.readline()

        started = time.monotonic()
        engine.tick()  # identifies the new processes: their walks wait, a budget's worth done
        held_s = time.monotonic() - started
        print(f"first tick {held_s * 1000:.0f} ms, {len(datapath.pending_walks())} walks left")
        assert held_s < HELD_TICK_S, (
            f"a tick held the lock {held_s:.2f} s over {NEW_PROCESSES} x {DESCRIPTORS} descriptors"
        )
        hold = engine._applier.hold
        assert all(hold.slot_of_process(pid) for pid in new), "not tagged for new sockets"
        assert set(datapath.pending_walks()) <= set(new) and datapath.pending_walks(), (
            "every walk done within the budget: nothing proved"
        )
        (app,) = [a for a in engine.list_applications() if a.id == limited]
        assert "not held to it yet" in app.up_limit_reach, app.up_limit_reach

        ticks, longest = 1, held_s
        while datapath.pending_walks():
            assert ticks < 10 * NEW_PROCESSES, f"{len(datapath.pending_walks())} walks still wait"
            started = time.monotonic()
            engine.tick()
            longest = max(longest, time.monotonic() - started)
            ticks += 1
        print(
            f"{ticks} ticks, the longest {longest * 1000:.0f} ms (budget {WALK_BUDGET_S * 1000:.0f} ms)"
        )
        assert longest < HELD_TICK_S
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
        for rate in (300_000, 400_000):
            started = time.monotonic()
            assert engine.set_limit(limited, Direction.UP, rate, 0) == limited
            held_s = time.monotonic() - started
            print(f"a new rate: {held_s * 1000:.0f} ms, {len(datapath.pending_walks())} walks left")
            assert held_s < HELD_TICK_S, f"a rate change held the lock {held_s:.2f} s"
            assert datapath.pending_walks(), "every socket capped within the budget: nothing proved"
            for _ in range(10 * NEW_PROCESSES):
                if not datapath.pending_walks():
                    break
                engine.tick()
            assert not datapath.pending_walks()
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
    (review31). A budget under one listing: the walk still ends in a few
    dozen calls, its socket (the highest descriptor) tagged."""
    holder_script = programs[1]
    holder_script.write_text(HOLDER)
    with _a_block_and_a_limit(kernel_ready, programs, 1.0) as (engine, datapath, running, _):
        process = subprocess.Popen([sys.executable, str(holder_script), "19000"],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        running.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        sock_fd = int(process.stdout.readline())
        process.stdout.readline()
        datapath.walk_budget_s = 0.005  # under one listing of its table
        engine.tick()  # tags it: its walk waits, a budget's worth done
        assert process.pid in datapath.pending_walks(), "walked at once: nothing proved"
        calls = 0
        while datapath.pending_walks():
            assert calls < 100, f"{calls} calls of 5 ms and the walk goes on"
            datapath.walk_pending()
            calls += 1
        print(f"walked in {calls} more calls of {datapath.walk_budget_s * 1000:.0f} ms")
        slot = engine._applier.hold.slot_of_process(process.pid)
        assert (
            slot and slot_of_socket(datapath._maps["socket_tags"].fd, process.pid, sock_fd) == slot
        )
