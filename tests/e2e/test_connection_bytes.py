"""ListConnections reports each TCP connection's own bytes, from the kernel
(issue 17): a real helper, real traffic over the netns pair, counts that grow
with what moved. UDP sockets say -1 (the kernel counts nothing per UDP socket).
ListProcesses gives each process its own rates, which add up to its
application's."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import ConnectionInfo

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, nsenter_argv, spawn, wait_for_line
from tests.support.waiting import eventually

SERVED = 1_000_000  # the peer sends this much as soon as the app connects
FIRST, SECOND = 2_000_000, 3_000_000  # the app sends these, the second once told to

# The peer: accepts one connection, sends SERVED bytes, then reads to the end.
SERVER = ("import json, socket, sys; l = socket.create_server(('0.0.0.0', int(sys.argv[1]))); "
          "print(json.dumps({'listening': 1}), flush=True); c = l.accept()[0]; c.sendall(b'd' * int(sys.argv[2])); "
          "exec('while c.recv(1 << 16): pass')")  # fmt: skip
# The app: connects, reads SERVED bytes, sends FIRST; once the go file exists,
# SECOND more; each step said on stdout. A UDP socket beside it, connected.
CLIENT = """
import json, os, socket, sys, time
host, port, served, first, second, go = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6]), sys.argv[6]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect((host, port + 1)); u.send(b"hello")
s = socket.create_connection((host, port)); got = 0
while got < served: got += len(s.recv(1 << 16))
s.sendall(b"u" * first); print(json.dumps({"first": 1}), flush=True)
while not os.path.exists(go): time.sleep(0.02)
s.sendall(b"u" * second); print(json.dumps({"second": 1}), flush=True); time.sleep(120)
"""


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, Path, object]]:
    """(application id, go file, client process) of the app connected to the peer."""
    pair, port = stack.pair, 7000 + secrets.randbelow(500)
    server = spawn(
        nsenter_argv(pair.peer_ns, [sys.executable, "-c", SERVER, str(port), str(SERVED)]), None
    )
    desktop_id = own_names.desktop_id("ConnBytes", fresh=True)
    try:
        wait_for_line(server, "listening")
        with app_scope(stack.cgroup_root, desktop_id) as scope:
            go = tmp_path / "go"
            argv = [
                sys.executable,
                "-c",
                CLIENT,
                pair.peer_addr,
                str(port),
                str(SERVED),
                str(FIRST),
                str(SECOND),
                str(go),
            ]
            app = spawn(nsenter_argv(pair.host_ns, argv), scope)
            yield f"app:{desktop_id}", go, app
            app.kill()
            app.wait(10)
    finally:
        server.kill()
        server.wait(10)


def _connections(stack: Stack, app_id: str) -> list[ConnectionInfo]:
    return call_helper(stack.bus_address, lambda c: c.list_connections(app_id))


def _tcp_to_peer(stack: Stack, app_id: str) -> ConnectionInfo | None:
    found = [
        c
        for c in _connections(stack, app_id)
        if c.protocol == "tcp" and c.remote.startswith(stack.pair.peer_addr + ":")
    ]
    return found[0] if found else None


def _near(value: int, expected: int) -> bool:
    return abs(value - expected) <= 0.02 * expected


def test_a_tcp_connections_bytes_grow_with_its_traffic(
    stack: Stack, client: tuple[str, Path, object]
) -> None:
    app_id, go, app = client
    wait_for_line(app, "first")  # type: ignore[arg-type]
    # bytes_acked lags the send by an ACK's round trip: wait for it to settle.
    assert eventually(
        lambda: (c := _tcp_to_peer(stack, app_id)) is not None and _near(c.tx_bytes, FIRST), 10.0
    ), f"after {FIRST} bytes sent and {SERVED} received: {_connections(stack, app_id)}"
    first = _tcp_to_peer(stack, app_id)
    assert first is not None and first.state == "ESTABLISHED"
    assert _near(first.rx_bytes, SERVED), first
    go.touch()
    wait_for_line(app, "second")  # type: ignore[arg-type]
    assert eventually(
        lambda: (
            (c := _tcp_to_peer(stack, app_id)) is not None and _near(c.tx_bytes, FIRST + SECOND)
        ),
        10.0,
    ), f"after {FIRST + SECOND} bytes sent: {_connections(stack, app_id)}"
    second = _tcp_to_peer(stack, app_id)
    assert second is not None and second.rx_bytes == first.rx_bytes  # nothing more came
    udp = [c for c in _connections(stack, app_id) if c.protocol == "udp"]
    assert udp and all((c.rx_bytes, c.tx_bytes) == (-1, -1) for c in udp), udp


# Sends `rate` datagrams of 1,000 bytes a second to an echo and reads the echoes:
# 1,028 bytes a datagram at L3 each way (IP and UDP headers).
SENDER = """
import json, socket, sys, time
host, port, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((host, port)); s.setblocking(False)
print(json.dumps({"sending": 1}), flush=True)
start, sent, data = time.monotonic(), 0, b"x" * 1000
while True:
    due = int((time.monotonic() - start) * rate)
    while sent < due:
        try: s.send(data)
        except OSError: pass
        sent += 1
    try:
        while True: s.recv(2048)
    except OSError: pass
    time.sleep(0.005)
"""
ECHO = ("import json, socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.bind(('0.0.0.0', int(sys.argv[1]))); print(json.dumps({'listening': 1}), flush=True)\n"
        "while True:\n    d, a = s.recvfrom(2048); s.sendto(d, a)")  # fmt: skip
DATAGRAM_L3 = 1028
RATES = (100, 250)  # datagrams a second, one rate per process


def test_an_applications_processes_rates_add_up_to_its_own(stack: Stack) -> None:
    """Two processes of one application, each sending and receiving UDP at its
    own known rate: ListProcesses gives each its rate, and in one tick their
    rates and bytes add up to the application's (ListApplications);
    `chadthrottle-ctl processes --json` lists both."""
    pair, port = stack.pair, 7600 + secrets.randbelow(300)
    echo = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", ECHO, str(port)]), None)
    desktop_id = own_names.desktop_id("ProcRates", fresh=True)
    app_id, senders = f"app:{desktop_id}", []
    try:
        wait_for_line(echo, "listening")
        with app_scope(stack.cgroup_root, desktop_id) as scope:
            for rate in RATES:
                argv = [sys.executable, "-c", SENDER, pair.peer_addr, str(port), str(rate)]
                senders.append(spawn(nsenter_argv(pair.host_ns, argv), scope))
                wait_for_line(senders[-1], "sending")
            expected = {p.pid: rate * DATAGRAM_L3 for p, rate in zip(senders, RATES, strict=True)}
            seen: list[object] = []

            async def one_tick(client: Any) -> tuple[Any, Any] | None:
                """Processes and application read in one tick (the processes
                the same before and after), or None."""
                try:
                    before = await client.list_processes(app_id)
                except HelperClientError:  # not known to the helper yet
                    return None
                apps = [a for a in await client.list_applications() if a.id == app_id]
                after = await client.list_processes(app_id)
                seen[:] = [before, apps]
                return (after, apps[0]) if apps and before == after else None

            def settled() -> bool:
                found = call_helper(stack.bus_address, one_tick)
                if found is None:
                    return False
                processes, app = found
                rates = {p.pid: (p.down_bps, p.up_bps) for p in processes}
                return (
                    app.down_bps > 0
                    and rates.keys() == expected.keys()
                    and all(
                        0.75 * expected[pid] <= rate <= 1.25 * expected[pid]
                        for pid, both in rates.items()
                        for rate in both
                    )
                )

            assert eventually(settled, 20.0, 0.3), f"expected {expected} B/s each way: {seen}"
            found = None
            while found is None:
                found = call_helper(stack.bus_address, one_tick)
            processes, app = found
            assert sum(p.down_bps for p in processes) == pytest.approx(app.down_bps, rel=1e-9)
            assert sum(p.up_bps for p in processes) == pytest.approx(app.up_bps, rel=1e-9)
            assert sum(p.rx_bytes for p in processes) == app.rx_bytes
            assert sum(p.tx_bytes for p in processes) == app.tx_bytes
            listed = subprocess.run(
                [sys.executable, "-m", "chadthrottle.cli.ctl", "processes", app_id, "--json"],
                env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
            assert {entry["pid"] for entry in json.loads(listed.stdout)} == expected.keys()
            for sender in senders:
                sender.kill()
                sender.wait(10)
    finally:
        for process in [*senders, echo]:
            process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
