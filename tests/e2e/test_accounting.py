"""The numbers in the window are true: each scenario of the accounting
benchmark lands on its application with the bytes the wire carried, exited
processes stay listed, other namespaces' devices stay apart, and loopback is
counted apart."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.contract import TICK_INTERVAL_S, ApplicationInfo, InterfaceInfo

from bench.accounting_scenarios import (
    Measurement,
    Site,
    _helper_view,
    _settled_view,
    measure,
    scenarios,
    server,
)
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    app_scope,
    netns_device,
    netns_pair,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.waiting import eventually
from tests.support.wire_truth import make_countable, quiet, wire_counters

SCALE = 1 / 16  # of the benchmark's sizes: a 64 MiB download, 4 MiB each way elsewhere
SCENARIOS = {scenario.key: scenario for scenario in scenarios(SCALE)}
SERVER_PORT = 5800
TICKS_S = 2.5  # the helper reads counters once a second


@pytest.fixture(scope="module")
def sites(stack: Stack) -> Iterator[dict[bool, Site]]:
    """Where applications run: the helper's namespace (False), and the host
    namespace of a second pair (True), each with a server and a veth whose
    counters are the wire (tests/support/wire_truth.py)."""
    with netns_pair() as other, contextlib.ExitStack() as servers:
        for pair in (stack.pair, other):
            make_countable(pair)
            servers.enter_context(server(pair, SERVER_PORT))
        yield {
            False: Site(stack.pair, SERVER_PORT, ""),
            True: Site(other, SERVER_PORT, other.host_ns),
        }


Devices = dict[tuple[str, str], InterfaceInfo]


def _devices(stack: Stack) -> Devices:
    return {
        (i.netns, i.name): i for i in call_helper(stack.bus_address, lambda c: c.list_interfaces())
    }


@dataclass(frozen=True)
class Measured:
    """One scenario's run, and the helper's devices just before and after it."""

    m: Measurement
    before: Devices
    after: Devices


@pytest.fixture(scope="module")
def measured(stack: Stack, sites: dict[bool, Site]) -> Callable[[str], Measured]:
    """Each scenario run once in the module: the test of the other
    namespace's device (OtherNetns) judges the run the scenario's own test
    judged (it ran it again: about 5 s)."""
    done: dict[str, Measured] = {}

    def run(key: str) -> Measured:
        if key not in done:
            scenario = SCENARIOS[key]
            before = _devices(stack)
            m = measure(stack.bus_address, stack.cgroup_root, sites[scenario.other_netns], scenario)
            done[key] = Measured(m, before, _devices(stack))
        return done[key]

    return run


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_each_scenario_is_attributed_to_its_application_within_one_percent_of_the_wire(
    measured: Callable[[str], Measured], key: str
) -> None:
    """bench/accounting_scenarios.py at a smaller scale: the application's bytes
    (ListApplications) against the veth's own counters, both directions."""
    m = measured(key).m
    assert m.found, f"{m.app_id} is not listed"
    assert m.wire_dropped == 0, "the veth dropped packets: resent uploads count twice at the socket"
    assert m.wire_rx + m.wire_tx > 0 and m.within(0.01), m  # each direction within 1% of the wire
    # every byte the datapath counted on the device went to the application
    assert (m.device_rx, m.device_tx) == (m.app_rx, m.app_tx), m


def test_short_lived_processes_stay_listed_after_they_exit(
    stack: Stack, sites: dict[bool, Site]
) -> None:
    """Listed for EXITED_VISIBLE_S (60 s) after its last traffic, so judged
    on a run of its own, right after it: judged after the module's other
    scenarios (25 s at load 4), a two-lane run at load 25-35 here found the
    application already forgotten (KeyError), as the helper promises."""
    scenario = SCENARIOS["Burst"]
    measure(stack.bus_address, stack.cgroup_root, sites[False], scenario)
    listed: list[ApplicationInfo] = []

    def exited() -> bool:  # the helper sees the last exits within a tick or two
        apps = call_helper(stack.bus_address, lambda c: c.list_applications())
        listed[:] = [app for app in apps if app.id == scenario.app_id]
        return bool(listed) and not listed[0].running

    assert eventually(exited, 10.0, 0.2), listed or f"{scenario.app_id} is not listed"
    app = listed[0]
    assert app.pids == ()  # every process exited; still listed with its totals
    assert (
        app.name == scenario.desktop_id.removeprefix("org.chadthrottle.") and app.rx_bytes > 0
    )  # and with the name it had


def test_interfaces_of_another_namespace_are_listed_apart(
    stack: Stack, sites: dict[bool, Site], measured: Callable[[str], Measured]
) -> None:
    """Both veths have the same ifindex in their own namespaces; traffic in the
    other namespace must not be added to the helper's device."""
    here, there = sites[False].pair, sites[True].pair
    assert (
        netns_device(here.host_ns, here.host_if)[1] == netns_device(there.host_ns, there.host_if)[1]
    )
    run = measured("OtherNetns")
    assert SCENARIOS["OtherNetns"].other_netns
    before, after, m = run.before, run.after, run.m
    mine = ("", here.host_if)
    assert (after[mine].rx_bytes, after[mine].tx_bytes) == (
        before[mine].rx_bytes,
        before[mine].tx_bytes,
    )
    theirs = after[(there.host_ns, there.host_if)]
    assert theirs.ifindex == after[mine].ifindex and not theirs.loopback
    assert theirs.rx_bytes >= m.wire_rx > 0


def test_loopback_is_counted_apart(stack: Stack) -> None:
    """Loopback in the helper's namespace: neither rate includes it."""
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestLoop")) as scope:
        listener = spawn(
            nsenter_argv(
                stack.pair.host_ns,
                [
                    sys.executable,
                    str(TRAFFIC_SCRIPT),
                    "serve",
                    "--role",
                    "sink",
                    "--port",
                    "5710",
                    "--seconds",
                    "8",
                ],
            ),
            scope,
        )
        wait_for_line(listener, "listening")
        sender = spawn(
            nsenter_argv(
                stack.pair.host_ns,
                [
                    sys.executable,
                    str(TRAFFIC_SCRIPT),
                    "connect",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "5710",
                    "--role",
                    "source",
                    "--rate",
                    "4000000",
                    "--seconds",
                    "6",
                ],
            ),
            scope,
        )
        try:
            seen: list[ApplicationInfo] = []

            def loopback_counted() -> (
                bool
            ):  # the first reading that has it (was: one after a fixed 3.5 s)
                apps = {
                    a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                }
                seen[:] = (
                    [apps[own_names.app_id("TestLoop")]]
                    if own_names.app_id("TestLoop") in apps
                    else []
                )
                return (
                    bool(seen)
                    and seen[0].loopback_up_bps > 2_000_000
                    and seen[0].loopback_down_bps > 2_000_000
                )

            assert eventually(loopback_counted, TICKS_S + 2), seen
            (app,) = seen
            assert app.up_bps < 10_000 and app.down_bps < 10_000
        finally:
            for process in (sender, listener):
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()


# A server that takes one connection and reads nothing until told (the file at
# argv[2] exists), then reads to the end and closes; and a client that fills
# its send buffer, closes and exits at once: the kernel sends the rest, and
# the FIN exchange, for a process that is gone.
_LATE_SERVER = """
import json, os, socket, sys, time
port, go = int(sys.argv[1]), sys.argv[2]
with socket.create_server(("0.0.0.0", port)) as listener:
    print(json.dumps({"listening": port}), flush=True)
    conn, _ = listener.accept()
    while not os.path.exists(go):
        time.sleep(0.01)
    received = 0
    while data := conn.recv(65536):
        received += len(data)
    conn.close()
    print(json.dumps({"received": received}), flush=True)
"""
_LATE_CLIENT = """
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = socket.socket()
# all of it fits, whatever net.core.wmem_max says (SO_SNDBUFFORCE: root): no wait
sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), 2 * size)
sock.connect((host, port))
sock.sendall(b"x" * size)
sock.close()
"""
LATE_BYTES = 1024 * 1024
LATE_PORT = SERVER_PORT + 1


def test_a_processs_packets_after_its_exit_was_noticed_count_for_its_application(
    stack: Stack, sites: dict[bool, Site], tmp_path: Path
) -> None:
    """The Burst flake (docs/benchmarks.md, 2026-12-06): a socket outlives its
    process (data still queued, the FIN exchange); bytes it moves after the
    tick that saw the process exit land on the device, and must land on the
    application too. Without the fix: 0.9+ MB here on the device only."""
    pair, desktop_id = sites[False].pair, own_names.desktop_id("AcctLate")
    app_id, go = f"app:{desktop_id}", tmp_path / "go"
    server_argv = [sys.executable, "-c", _LATE_SERVER, str(LATE_PORT), str(go)]
    late_server = spawn(nsenter_argv(pair.peer_ns, server_argv), None)
    try:
        wait_for_line(late_server, "listening")
        quiet(pair.host_ns, pair.host_if, window_s=0.3)
        _, device_before = _helper_view(stack.bus_address, app_id, sites[False])
        assert device_before is not None
        wire_before = wire_counters(pair.host_ns, pair.host_if)
        with app_scope(stack.cgroup_root, desktop_id) as scope:
            client_argv = [sys.executable, "-c", _LATE_CLIENT, pair.peer_addr, str(LATE_PORT),
                           str(LATE_BYTES)]  # fmt: skip
            client = spawn(nsenter_argv(pair.host_ns, client_argv), scope)
            assert client.wait(timeout=30) == 0

            def exit_noticed() -> bool:
                app, _ = _helper_view(stack.bus_address, app_id, sites[False])
                return app is not None and not app.running

            assert eventually(exit_noticed, 3 * TICKS_S), f"{app_id}: its exit was not noticed"
            go.touch()  # the rest of the upload, and both FINs, now cross
            wait_for_line(late_server, "received")
        quiet(pair.host_ns, pair.host_if, window_s=0.3)
        done_ns = time.monotonic_ns()
        wire = wire_counters(pair.host_ns, pair.host_if) - wire_before
        app, device = _settled_view(stack.bus_address, app_id, sites[False], done_ns)
    finally:
        late_server.kill()
        late_server.wait()
        if late_server.stdout is not None:
            late_server.stdout.close()
    assert app is not None and device is not None
    assert wire.tx_bytes > LATE_BYTES and wire.dropped == 0
    device_rx, device_tx = (device.rx_bytes - device_before.rx_bytes,
                            device.tx_bytes - device_before.tx_bytes)  # fmt: skip
    assert (app.rx_bytes, app.tx_bytes) == (device_rx, device_tx), (app, device_rx, device_tx)
    assert abs(app.tx_bytes - wire.tx_bytes) <= 0.01 * wire.tx_bytes, (app, wire)
    # the peer's FIN may reach a socket the kernel made a FIN_WAIT2 time-wait
    # entry already, which no program sees (docs/accounting.md, "TIME_WAIT")
    assert 0 <= wire.rx_bytes - app.rx_bytes <= 52, (app, wire)


# A parent with no socket of its own (the BurstBare generator's, whose
# children the fork events alone name: a socket would name them as the helper
# announced it), whose first child (a witness) makes a connection and waits,
# so the application is listed with the parent's pid once the index read it.
# Once told (the file at argv[3] exists), it forks argv[5] children one after
# another, each with a connection (the Burst scenario's,
# bench/scenario_traffic.py), and exits.
_FORKING_PARENT = """
import json, os, sys, time
host, port, go, bench, children = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
sys.path.insert(0, bench)
from scenario_traffic import tcp_exchange
witness = os.fork()
if witness == 0:
    tcp_exchange(host, port, 1000, 1000)
    while not os.path.exists(go):
        time.sleep(0.01)
    os._exit(0)
print(json.dumps({"ready": os.getpid()}), flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
for _ in range(children):
    child = os.fork()
    if child == 0:
        tcp_exchange(host, port, 32768, 32768)
        os._exit(0)
    os.waitpid(child, 0)
os.waitpid(witness, 0)
"""
LATE_CHILDREN = 100


def _is_zombie(pid: int) -> bool:
    """Exited, not yet reaped (no executable, no command line left to read)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.mark.parametrize("reaped", ["while-held", "after-it-settled"])
def test_children_a_late_helper_comes_to_after_their_parent_exited_count_for_its_application(
    stack: Stack, sites: dict[bool, Site], tmp_path: Path, reaped: str
) -> None:
    """The BurstBare flake (2026-12-06, a two-lane run: 90 of 200 children's
    bytes on the interface only): the helper, held up, came to the children's
    announcements after they and their parent had exited (docs/benchmarks/flakes.md,
    burst25). Here it is stopped (SIGSTOP) from before the children start until
    after their parent exited; outside any app scope, so each child is known
    only by its parent (the fork events), which the helper had read, alive
    (and never announced: it has no socket).
    after-it-settled: the parent is a zombie as the helper resumes and until
    it settled, so its ticks read it with no executable (flake30, CI m2: 76
    of 200 children on the interface only; the children it came to after
    such a read were named by nothing)."""
    pair, site = sites[False].pair, sites[False]
    script = tmp_path / "late-parent.py"  # its own application: script:<path>
    script.write_text(_FORKING_PARENT)
    app_id, go = f"script:{script}", tmp_path / "go"
    quiet(pair.host_ns, pair.host_if, window_s=0.3)
    _, device_before = _helper_view(stack.bus_address, app_id, site)
    assert device_before is not None
    wire_before = wire_counters(pair.host_ns, pair.host_if)
    argv = [sys.executable, str(script), pair.peer_addr, str(SERVER_PORT), str(go),
            str(Path(__file__).parents[2] / "bench"), str(LATE_CHILDREN)]  # fmt: skip
    parent = spawn(nsenter_argv(pair.host_ns, argv), None)
    helper_pid = stack.helper.pid
    assert helper_pid is not None
    stopped = False
    try:
        wait_for_line(parent, "ready")

        def parent_read() -> bool:  # the index has read it (its processes are listed)
            app, _ = _helper_view(stack.bus_address, app_id, site)
            return app is not None and parent.pid in app.pids

        assert eventually(parent_read, 3 * TICKS_S), f"{app_id}: not listed with its process"
        os.kill(helper_pid, signal.SIGSTOP)
        stopped = True
        go.touch()
        if reaped == "while-held":
            assert parent.wait(timeout=120) == 0
        else:
            assert eventually(lambda: _is_zombie(parent.pid), 120, 0.01), "the parent did not exit"
        # held a tick longer: one is due as it resumes, and may see the parent
        # gone before the children's announcements are read (how the flake lost
        # them; the other order found the parent still listed by the index)
        time.sleep(TICK_INTERVAL_S)
        if stopped:
            os.kill(helper_pid, signal.SIGCONT)
            stopped = False
        quiet(pair.host_ns, pair.host_if, window_s=0.3)
        done_ns = time.monotonic_ns()
        wire = wire_counters(pair.host_ns, pair.host_if) - wire_before
        app, device = _settled_view(stack.bus_address, app_id, site, done_ns)
        assert parent.wait() == 0  # after-it-settled: reaped only now
    finally:
        if stopped:
            os.kill(helper_pid, signal.SIGCONT)
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert app is not None and device is not None and wire.dropped == 0
    device_rx, device_tx = (device.rx_bytes - device_before.rx_bytes,
                            device.tx_bytes - device_before.tx_bytes)  # fmt: skip
    assert wire.rx_bytes > LATE_CHILDREN * 32768
    assert (app.rx_bytes, app.tx_bytes) == (device_rx, device_tx), (app, device_rx, device_tx)
    assert abs(app.rx_bytes - wire.rx_bytes) <= 0.01 * wire.rx_bytes, (app, wire)
