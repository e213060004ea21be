"""On the real datapath: an unblock that leaves its rule nothing is taken
though the kernel refuses to open its gate (every access to that one gate
made to raise), and the application's traffic passes at once: its process
is untagged in the same change, and chadt_egress looks a socket's gate up
by its tag, so the block the gate holds on holds none of its sockets. The
test sets that gate's lease an hour ahead: only the untag can let a
datagram through. Until 2026-12-06 the unblock was refused. The engine's
cases: tests/helper/engine/test_refused_gate_holding_nothing.py."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, HELD_BEFORE, Direction
from chadthrottle.helper.engine.api import ClearLimit, SetBlocked, SetLimit
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import monotonic_ns
from chadthrottle.helper.kernel.layout import GATE_BLOCK, POLICE_UP, policer_key

from tests.helper.kernel.test_gate_write_failure import _engine, _refuse_gate_of
from tests.support.accepting_server import (
    Server,
    accept,
    accepting_server,
    connect_queued,
    slot_of_fd,
)
from tests.support.reused_pids import stop, wait_for_exec

UP = Direction.UP
HOUR_NS = 3600 * 10**9
# Sends each line read as one datagram, then says so. A blocked upload's
# UDP datagram is dropped with a congestion notice: the send does not fail.
SENDER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    s.sendto(line.strip().encode(), ('127.0.0.1', int(sys.argv[1])))\n"
    "    print('sent', flush=True)\n"
)


class Sender:
    """A copy of this Python under a name no other test runs (its own
    application), holding one UDP socket made before any rule."""

    def __init__(self, program: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [str(program), "-c", SENDER, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_exec(self.process.pid, program)
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def send(self, payload: str) -> None:
        """One datagram of payload, once sent (loopback: delivered or dropped by then)."""
        assert self.process.stdin is not None
        self.process.stdin.write(payload + "\n")
        self.process.stdin.flush()
        assert self.readline() == "sent"


@pytest.fixture
def sender_and_receiver() -> Iterator[tuple[str, Sender, socket.socket]]:
    directory = Path(tempfile.mkdtemp(prefix="ct-gatenothing-"))
    program = directory / "ctgatesend"
    shutil.copy(Path(sys.executable).resolve(), program)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)  # a guard only: the datagram is sent before recv
    sender = None
    try:
        sender = Sender(program, receiver.getsockname()[1])
        yield f"exe:{program}", sender, receiver
    finally:
        stop(sender.process if sender else None)
        receiver.close()
        shutil.rmtree(directory)


def test_an_unblock_leaving_nothing_lets_traffic_through_past_a_gate_the_kernel_keeps(
    datapath: Datapath,
    sender_and_receiver: tuple[str, Sender, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, sender, receiver = sender_and_receiver
    engine = _engine(datapath)
    engine.tick()
    assert engine.apply_changes([SetBlocked(app, (UP,), True)]) == [app]
    sender.send("blocked")  # dropped: the first datagram received is the next
    slot = engine._applier.slots.slot_of((app, ADMIN_OWNER))
    assert slot is not None
    key = policer_key(slot, POLICE_UP)
    read = _refuse_gate_of(engine, app, monkeypatch, police=POLICE_UP)
    read(key).lease_until_ns = monotonic_ns() + HOUR_NS  # held on: only the untag lets through
    try:
        outcome = engine.apply_changes([SetBlocked(app, (UP,), False)])
        assert outcome == [app], f"refused for a gate that holds none of its sockets: {outcome}"
        assert int(read(key).flags) & GATE_BLOCK, "the kernel's gate no longer blocks"
        assert int(read(key).lease_until_ns) > monotonic_ns()
        sender.send("open")
        assert receiver.recv(16) == b"open", "the block did not hold"
    finally:
        read(key).flags = 0


@pytest.fixture
def server() -> Iterator[Server]:
    """The accepting server, its listener open before any rule: (app id, process, port)."""
    with accepting_server() as served:
        yield served


def test_a_connection_waiting_to_be_accepted_is_not_said_open_while_the_old_block_holds_it(
    datapath: Datapath,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The untag walks the process's descriptors: a connection the kernel
    made from its listener while the listener carried the slot (BPF_F_CLONE)
    and that the process has not accepted yet is in none of them, so it keeps
    the slot, and the gate the kernel would not open blocks its upload once
    accepted. The listing must not say the upload simply open then: it says
    the kernel keeps the previous setting on such sockets, for how long at
    most. Before: listed open, no problem (1117fb9)."""
    app, process, port = server
    engine = _engine(datapath)
    engine.tick()
    # a rate first: the listener carries the slot, and the handshake passes
    assert engine.apply_changes([SetLimit(app, UP, 10_000_000, 0)]) == [app]
    client = connect_queued(port)
    try:
        assert engine.apply_changes([SetBlocked(app, (UP,), True)]) == [app]
        slot = engine._applier.slots.slot_of((app, ADMIN_OWNER))
        assert slot is not None
        key = policer_key(slot, POLICE_UP)
        engine.tick()  # the lease renewed, as every second
        read = _refuse_gate_of(engine, app, monkeypatch, police=POLICE_UP)
        read(key).lease_until_ns = monotonic_ns() + HOUR_NS
        try:
            lifted = engine.apply_changes([SetBlocked(app, (UP,), False), ClearLimit(app, (UP,))])
            assert lifted == [app, app], lifted
            fd = accept(process)
            held = int(read(key).flags) & GATE_BLOCK and read(key).lease_until_ns > monotonic_ns()
            assert held and slot_of_fd(datapath, process.pid, fd) == slot, (
                "the accepted socket no longer carries the refused gate's slot"
            )
            (listed,) = [a for a in engine.list_applications() if a.id == app]
            assert not listed.up_blocked  # the process's own sockets pass
            assert HELD_BEFORE in listed.up_limit_problem, (
                f"listed open while the kernel blocks an accepted socket: {listed.up_limit_problem!r}"
            )
        finally:
            read(key).flags = 0
    finally:
        client.close()


def test_a_connection_waiting_to_be_accepted_when_a_block_lands_is_blocked_once_accepted(
    datapath: Datapath, server: Server
) -> None:
    """The same walk tags: a connection waiting in the listener's accept
    queue when the application's rule lands got the listener's tag when the
    kernel made it, none then, and is not among the process's descriptors
    until accepted, after the walk. The walk notes it (sock_diag, by cookie)
    and the first tick after the accept walks the process again: it carries
    the slot. Before (56b4331, strict xfail): no slot for its whole life, its
    upload passed while the application was listed blocked."""
    app, process, port = server
    engine = _engine(datapath)
    engine.tick()
    client = connect_queued(port)  # waits to be accepted
    try:
        assert engine.apply_changes([SetBlocked(app, (UP,), True)]) == [app]
        slot = engine._applier.slots.slot_of((app, ADMIN_OWNER))
        assert slot is not None
        (listed,) = [a for a in engine.list_applications() if a.id == app]
        assert listed.up_blocked
        fd = accept(process)
        engine.tick()
        assert slot_of_fd(datapath, process.pid, fd) == slot, (
            "listed blocked, but the connection it accepted carries no slot: its upload passes"
        )
    finally:
        client.close()
