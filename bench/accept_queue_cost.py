"""What noting the connections waiting in an accept queue costs the helper
(helper/kernel/accept_queue.py; docs/backends.md, "Waiting to be accepted").

    sudo .venv/bin/python -m bench.accept_queue_cost [--waiting 10 1000 4000] [--rounds 30]

For each count N, this process opens a listener with N connections waiting
in its accept queue and another with N accepted (4N + 2 TCP sockets in its
namespace besides the machine's), then times:

- waiting_children, the sock_diag dump a walk that meets a listener makes
  once, and each tick makes once per set of listeners while a connection it
  noted waits (median, min and max of --rounds);
- AcceptQueues.due() with nothing noted: what every tick costs otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import time

from chadthrottle.helper.kernel.accept_queue import AcceptQueues, _listener, waiting_children


def _one(waiting: int, rounds: int) -> str:
    queued = socket.create_server(("127.0.0.1", 0), backlog=waiting + 16)
    other = socket.create_server(("127.0.0.1", 0), backlog=waiting + 16)
    kept = [queued, other]
    try:
        for _ in range(waiting):
            kept.append(socket.create_connection(queued.getsockname()))
            kept.append(socket.create_connection(other.getsockname()))
            kept.append(other.accept()[0])
        listener = _listener(queued.fileno())
        assert listener is not None
        times, found = [], None
        for _ in range(rounds):
            began = time.perf_counter()
            found = waiting_children(os.getpid(), frozenset({listener}))
            times.append(time.perf_counter() - began)
        assert found is not None and sorted(found.values()) == [0] * waiting, "not all seen waiting"
        queues, calls = AcceptQueues(), 10_000
        began = time.perf_counter()
        for _ in range(calls):
            queues.due()
        idle_us = (time.perf_counter() - began) / calls * 1e6
        return (
            f"waiting {waiting:5d} (TCP sockets here {4 * waiting + 2:6d}): dump median "
            f"{statistics.median(times) * 1e3:6.2f} ms, min {min(times) * 1e3:6.2f}, "
            f"max {max(times) * 1e3:6.2f}; due() with nothing noted {idle_us:.2f} us"
        )
    finally:
        for sock in kept:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, nargs="+", default=[10, 1000, 4000])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    for waiting in args.waiting:
        print(_one(waiting, args.rounds), flush=True)
    print(f"load after {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
