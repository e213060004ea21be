"""A bulk TCP upload between two namespaces (tests/helper/kernel/test_one_way_*.py,
bench/one_way_cost.py): the sender a thread of the calling process, the receiver a
process of its own, which reads as fast as the data comes, as a server does. A receiver
thread beside the test's own (the GIL shared with a sender, a sampler and the looks)
fell behind on a loaded machine: its window then shrank, the kernel held its ACKs until
it read, and their timestamps read that wait (5-16 ms with the modem empty)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.netns import entered_netns, nsenter_argv

SINK = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.create_server((sys.argv[1], 0), family=family)
print(server.getsockname()[1], flush=True)
accepted, _ = server.accept()
while accepted.recv(1 << 18):
    pass
"""


@contextmanager
def bulk_upload(from_ns: str, to_ns: str, to_addr: str) -> Iterator[socket.socket]:
    """A TCP socket of from_ns sending as fast as it may to a receiver at to_addr in
    to_ns, for the block; yields the sending socket."""
    sink = subprocess.Popen(nsenter_argv(to_ns, [sys.executable, "-c", SINK, to_addr]),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        stop = threading.Event()
        with entered_netns(from_ns):
            client = socket.create_connection((to_addr, port))
        client.settimeout(0.5)

        def send() -> None:
            chunk = b"x" * (1 << 16)
            while not stop.is_set():
                try:
                    client.sendall(chunk)
                except TimeoutError:
                    continue
                except OSError:
                    return

        sender = threading.Thread(target=send)
        sender.start()
        try:
            yield client
        finally:
            stop.set()
            sender.join(timeout=30)
            client.close()
    finally:
        sink.terminate()
        sink.wait(timeout=30)
