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
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import SetBlocked
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import monotonic_ns
from chadthrottle.helper.kernel.layout import GATE_BLOCK, POLICE_UP, policer_key

from tests.helper.kernel.test_gate_write_failure import _engine, _refuse_gate_of
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
