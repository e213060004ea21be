"""A bulk TCP upload between two namespaces from threads of the calling process
(tests/helper/kernel/test_one_way_*.py, bench/one_way_cost.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.netns import entered_netns


@contextmanager
def bulk_upload(from_ns: str, to_ns: str, to_addr: str) -> Iterator[socket.socket]:
    """A TCP socket of from_ns sending as fast as it may to a server at to_addr in
    to_ns, from threads of this process, for the block; yields the sending socket."""
    with entered_netns(to_ns):
        server = socket.create_server((to_addr, 0))
    stop = threading.Event()
    with server, entered_netns(from_ns):
        client = socket.create_connection(server.getsockname())
        client.settimeout(0.5)
        accepted, _ = server.accept()

        def drain() -> None:
            try:
                while accepted.recv(1 << 16):
                    pass
            except OSError:
                pass

        def send() -> None:
            chunk = b"x" * (1 << 16)
            while not stop.is_set():
                try:
                    client.sendall(chunk)
                except TimeoutError:
                    continue
                except OSError:
                    return

        threads = [threading.Thread(target=drain), threading.Thread(target=send)]
        for thread in threads:
            thread.start()
        try:
            yield client
        finally:
            stop.set()
            client.close()
            accepted.shutdown(socket.SHUT_RDWR)
            for thread in threads:
                thread.join(timeout=30)
            accepted.close()
