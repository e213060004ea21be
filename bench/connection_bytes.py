"""What ListConnections' per-socket byte counters cost the helper.

    sudo .venv/bin/python -m bench.connection_bytes [--sockets 500] [--rounds 20]

Opens --sockets TCP sockets over loopback in this process (half of them
accepted ends), then times the helper's real code on them: listing the
process's connections from /proc (what ListConnections did before), reading
every TCP socket's tcp_info through sock_diag in this namespace, and the same
from another namespace's point of view (entering it from a throwaway thread, as
for an application in a container). Prints the median of --rounds in ms.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import time
from collections.abc import Callable

from chadthrottle.helper.identity.connections import connections_of
from chadthrottle.helper.kernel.namespaces import in_netns
from chadthrottle.helper.kernel.socket_diag import tcp_bytes_by_namespace, tcp_bytes_here


def _median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.sockets + 256)), hard))
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.sockets)
    held = []
    for _ in range(args.sockets // 2):
        client = socket.create_connection(listener.getsockname())
        client.sendall(b"x" * 1000)
        held += [client, listener.accept()[0]]
    pid = os.getpid()
    listed = connections_of([pid])
    print(
        f"{len(listed)} connections of this process, {len(tcp_bytes_here())} TCP sockets in its namespace"
    )
    print(
        f"connections from /proc (before):           {_median_ms(lambda: connections_of([pid]), args.rounds):6.2f} ms"
    )
    print(
        f"tcp_info of every socket, own namespace:   {_median_ms(tcp_bytes_here, args.rounds):6.2f} ms"
    )
    print(
        f"tcp_info from a throwaway thread (netns):  "
        f"{_median_ms(lambda: in_netns(f'/proc/{pid}/ns/net', tcp_bytes_here), args.rounds):6.2f} ms"
    )
    both = lambda: tcp_bytes_by_namespace({c.reader for c in connections_of([pid])})  # noqa: E731
    print(f"ListConnections' engine work, in all:      {_median_ms(both, args.rounds):6.2f} ms")
    for sock in held:
        sock.close()
    listener.close()


if __name__ == "__main__":
    main()
