"""Connections read from /proc tables."""

from __future__ import annotations

import os
import socket

from chadthrottle.helper.identity.connections import connections_of, parse_table

TCP_TABLE = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0500000A:C822 4501659F:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
"""
TCP6_TABLE = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
"""


def test_parses_ipv4_addresses_ports_and_states() -> None:
    found = parse_table(TCP_TABLE, "tcp", 4, {4242: 1, 4343: 2})
    assert [(c.local, c.remote, c.state, c.pid) for c in found] == [
        ("127.0.0.1:8080", "0.0.0.0:0", "LISTEN", 1),
        ("10.0.0.5:51234", "159.101.1.69:443", "ESTABLISHED", 2),
    ]


def test_parses_ipv6_and_skips_sockets_of_other_processes() -> None:
    assert [(c.local, c.state) for c in parse_table(TCP6_TABLE, "tcp", 6, {5151: 7})] == [
        ("[::1]:22", "LISTEN")
    ]
    assert parse_table(TCP_TABLE, "tcp", 4, {}) == []


def test_finds_this_process_listening_socket() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = connections_of([os.getpid()])
    assert any(
        c.local == f"127.0.0.1:{port}" and c.state == "LISTEN" and c.protocol == "tcp"
        for c in found
    )
