"""What vetting a slot before it goes to another rule costs the helper
(Datapath.release_ready; helper/kernel/pending_walks.py, rights31).

    sudo .venv/bin/python -m bench.vet_cost [--sockets 0 1000 5000 15000] [--rounds 5]

Opens a datapath from the cache, tags this process with a slot, and for each
count N opens listeners until N TCP sockets carry it, then times:

- the dump of every TCP socket's tag in every network namespace a process
  is in (StorageDump), whole (median and max of --rounds);
- the same dump read within WALK_BUDGET_S per call, as walk_pending reads
  it: how many calls, the longest part.

Then untags this process whole and times release_ready's vet to its end
(the sweep of every process on the machine and a dump), call by call as the
engine's ticks make them: calls, total, the longest call.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import time
from pathlib import Path

from chadthrottle.helper.kernel.datapath import Datapath, _carrying, _namespaces
from chadthrottle.helper.kernel.pending_walks import WALK_BUDGET_S
from chadthrottle.helper.kernel.socket_diag import StorageDump

SLOT = 7


def _dump_whole(map_fd: int, rounds: int) -> tuple[int, list[float]]:
    times, found = [], 0
    for _ in range(rounds):
        began = time.perf_counter()
        dump = StorageDump(map_fd, _carrying({SLOT}), _namespaces())
        assert dump.go_on(float("inf")) and not dump.failed, dump.failed
        times.append(time.perf_counter() - began)
        found = len(dump.found)
    return found, times


def _dump_in_parts(map_fd: int) -> tuple[int, float]:
    dump = StorageDump(map_fd, _carrying({SLOT}), _namespaces())
    calls, longest = 0, 0.0
    while True:
        began = time.perf_counter()
        done = dump.go_on(time.monotonic() + WALK_BUDGET_S)
        longest, calls = max(longest, time.perf_counter() - began), calls + 1
        if done:
            assert not dump.failed, dump.failed
            return calls, longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[0, 1000, 5000, 15000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (20_000, 20_000))
    datapath = Datapath(cache_dir=Path("/var/cache/chadthrottle"))
    datapath.open()
    held: list[socket.socket] = []
    try:
        datapath.set_process_slot(os.getpid(), SLOT)
        map_fd = datapath._maps["socket_tags"].fd
        for count in args.sockets:
            while len(held) < count:
                held.append(socket.create_server(("127.0.0.1", 0), backlog=1))
            found, times = _dump_whole(map_fd, args.rounds)
            calls, longest = _dump_in_parts(map_fd)
            print(f"N={count} carrying, {len(_namespaces())} namespaces: found {found}; whole "
                  f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms;"
                  f" in parts {calls} calls, longest {longest * 1000:.1f} ms", flush=True)  # fmt: skip
        datapath.set_process_slot(os.getpid(), 0)  # whole: none carries it but held ones
        processes = sum(name.isdigit() for name in os.listdir("/proc"))
        began, calls, longest = time.perf_counter(), 0, 0.0
        assert not datapath.release_ready({SLOT})
        while not datapath.release_ready({SLOT}):
            call = time.perf_counter()
            datapath.walk_pending()
            longest, calls = max(longest, time.perf_counter() - call), calls + 1
        print(f"vet: {processes} processes, {len(held)} sockets here: {calls} calls, "
              f"{time.perf_counter() - began:.2f} s, longest call {longest * 1000:.0f} ms")  # fmt: skip
    finally:
        for sock in held:
            sock.close()
        datapath.close()


if __name__ == "__main__":
    main()
