"""A socket of a let-go slot kept in flight (its process sends it over its
own unix socket with SCM_RIGHTS and never receives it) is in no table, yet
every dump of the tags finds it (it has a file). It keeps the slot draining
(rule 2), but it made every process on the machine be swept again at each
dump, every second, for ever: each walk_pending call took the whole walk
budget (review34b's R2: median 0.098 s of calls ~5 a second, 126 processes).
Now every table is swept again only for a carrier not swept for yet, else at
a flight wait doubling to vet_again_max_s; and one received later is still
retagged, and the slot then let go."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import VET_AGAIN_S, Datapath
from chadthrottle.helper.kernel.pending_walks import WALK_BUDGET_S

from tests.helper.kernel.test_slot_passed_on import SLOT, USER_A, _slot_of
from tests.support.waiting import eventually

# A: connects once told the port (tagged by then), sends the connection over
# its own socketpair and closes it (in flight: in no table), then, told
# again, receives it and prints its descriptor.
HIDER = (
    "import array, socket, sys\n"
    "a, b = socket.socketpair()\n"
    "port = int(sys.stdin.readline())\n"
    "tcp = socket.create_connection(('127.0.0.1', port))\n"
    "a.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [tcp.fileno()]))])\n"
    "tcp.close()\n"
    "print('hidden', flush=True)\n"
    "sys.stdin.readline()\n"
    "fds = array.array('i')\n"
    "_, ancillary, _, _ = b.recvmsg(1, socket.CMSG_LEN(fds.itemsize))\n"
    "fds.frombytes(ancillary[0][2])\n"
    "print(fds[0], flush=True)\n"
    "sys.stdin.readline()\n"
)
CALLS_EVERY_S = 0.2  # ticks and callers' calls, ~5 a second (review34b's load)
WATCHED_S = 14.0


@contextmanager
def _hidden(datapath: Datapath, port: int) -> Iterator[subprocess.Popen[str]]:
    """A's process with its connection in flight, A's rule (SLOT) cleared."""
    hider = subprocess.Popen([sys.executable, "-c", HIDER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, user=USER_A,
                             group=USER_A)  # fmt: skip
    try:
        assert hider.stdin and hider.stdout
        start = read_start(hider.pid)
        assert start is not None
        datapath.set_slot_owners({SLOT: USER_A})
        datapath.set_process_slot(hider.pid, SLOT, start)
        hider.stdin.write(f"{port}\n")
        hider.stdin.flush()
        assert hider.stdout.readline().strip() == "hidden"
        datapath.set_process_slot(hider.pid, 0, start, later=True)  # A's rule cleared
        datapath.set_slot_owners({})
        yield hider
    finally:
        hider.kill()
        hider.wait()


def test_a_socket_kept_in_flight_does_not_sweep_every_process_at_each_dump(
    datapath: Datapath, listener: socket.socket
) -> None:
    with _hidden(datapath, listener.getsockname()[1]):
        processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
        spent: list[float] = []
        walking = 0  # calls after which walks wait (a sweep under way)
        ends = time.monotonic() + WATCHED_S
        while time.monotonic() < ends:
            # the slot drains (rule 2): its socket may be received by anyone
            assert SLOT not in datapath.release_ready({SLOT}), "released while in flight"
            began = time.monotonic()
            datapath.walk_pending()
            spent.append(time.monotonic() - began)
            walking += bool(datapath.pending_walks())
            time.sleep(CALLS_EVERY_S)  # the calls' pace, not a wait for a condition
        spent.sort()
        median, busy = spent[len(spent) // 2], sum(spent)
        print(f"\n{processes} processes, {len(spent)} calls in {WATCHED_S} s: walk_pending "
              f"median {median:.3f} s, max {spent[-1]:.3f} s, sum {busy:.2f} s; "
              f"walks waiting after {walking} calls")  # fmt: skip
        # after: the vet's sweep, the carrier's, then at the flight wait (2 s, 4 s, 8 s);
        # before: a sweep again after each dump, a second after the sweep before ended
        assert walking <= len(spent) / 2, f"a sweep under way after {walking} of {len(spent)} calls"
        assert median < WALK_BUDGET_S / 4, f"each call sweeps: median {median:.3f} s"
        assert datapath.in_flight_slots() == {SLOT}


def test_a_socket_received_after_its_flight_is_retagged_and_the_slot_let_go(
    datapath: Datapath, listener: socket.socket
) -> None:
    datapath.vet_again_max_s = 2 * VET_AGAIN_S
    with _hidden(datapath, listener.getsockname()[1]) as hider:
        assert hider.stdin and hider.stdout

        def known_in_flight() -> bool:
            assert SLOT not in datapath.release_ready({SLOT}), "released while in flight"
            datapath.walk_pending()
            return SLOT in datapath.in_flight_slots()

        assert eventually(known_in_flight, 20 * VET_AGAIN_S, interval_s=0.05)
        hider.stdin.write("\n")  # received: in A's table now, still carrying SLOT
        hider.stdin.flush()
        received = int(hider.stdout.readline())
        assert _slot_of(datapath, hider.pid, received) == SLOT

        def released() -> bool:
            if SLOT in datapath.release_ready({SLOT}):
                assert _slot_of(datapath, hider.pid, received) == 0, "released while carried"
                return True
            datapath.walk_pending()
            return False

        # the flight wait (at most vet_again_max_s), its sweep, then a dump
        assert eventually(released, 4 * datapath.vet_again_max_s + 10, interval_s=0.05), (
            f"not released: in flight {datapath.in_flight_slots()}, "
            f"draining {datapath.draining_slots()}"
        )
