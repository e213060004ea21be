"""Block and quota: how far a quota overshoots, and how soon a block holds.

    sudo .venv/bin/python bench/gates.py overshoot [--rates 1M,10M,50M] [--backends tc,ebpf]
    sudo .venv/bin/python bench/gates.py block-latency [--rounds 5]
    sudo .venv/bin/python bench/gates.py dead-helper [--rounds 5]
    sudo .venv/bin/python bench/gates.py gate-cost [--rounds 5]

overshoot: a TCP stream between two network namespaces, held at a rate by a
backend (TcShaper or EbpfPolicer, as the engine uses them) with the helper's
datapath attached; a quota of 1.5 s of that rate is set on the running
stream's gate (helper/kernel/gates.py) and the stream runs until it stops.
Printed: the kernel's count past the budget (bytes), and the receiver's
payload converted to L3 past it (which also counts what was already queued
towards the application when the quota was set, so it reads high downloads).

block-latency: the real helper on a private bus (with polkitd), an
application in an app scope downloading over TCP or UDP; SetBlocked is called
and the application's own receive loop notes when its last byte arrived
(CLOCK_MONOTONIC, the same clock in every process). Printed: how long the call
took, and from the call to the last byte.

dead-helper: a UDP download blocked, then the helper SIGKILLed: how long
until the application receives again (the block's lease running out).

Quiet windows and "receives again" are judged by the sink's own clock (its
reports' CLOCK_MONOTONIC times, tests/support/netns.py Receiver), not by when
this process read its reports: those come late on a busy machine (_quiet).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import default_burst_bytes
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import OPEN, GateSetting
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from bench.policer_probe import backend_for, parse_rate
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    app_scope,
    netns_pair,
    nsenter_argv,
    spawn,
    start_stream,
    wait_for_line,
)
from tests.support.waiting import eventually

MiB = 1024 * 1024
SLOT = 5
L3_PER_PAYLOAD = 1500 / 1448
QUOTA_SECONDS = 1.5
BENCH_APP = own_names.app_id("BenchBlock")
# The application in block-latency: reads until nothing came for QUIET_S,
# then prints when its last byte arrived.
QUIET_S = 1.0
SINK = r"""
import json, socket, sys, time
host, port, udp = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "udp"
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
if udp:
    sock.sendto(b"hello", (host, port))
else:
    sock.connect((host, port))
print(json.dumps({"connected": port}), flush=True)
sock.settimeout(0.05)
last, started = time.monotonic(), None
while True:
    try:
        data = sock.recv(65536)
        if not data:
            break
        last = time.monotonic()
        started = started or last
    except socket.timeout:
        if started and time.monotonic() - last > float(sys.argv[4]):
            break
print(repr(last), flush=True)
"""


def _quiet(receiver: Receiver, seconds: float) -> bool:
    """Nothing arrived at the stream's sink over the next `seconds`, judged by
    the sink's own clock (Receiver.quiet_for: its reports' CLOCK_MONOTONIC
    times) and, for TCP, by what had arrived (read plus held unread in its
    socket, "q"), as the tests judge since 2026-12-05. Until 2026-12-06 it was
    timed by when this process's reader thread got the bytes: late on a busy
    machine, so bytes counted before the window read as traffic in it, and
    bytes that arrived in it but were not yet read (by a sink itself held off
    the CPU) as none: a quota or block judged to hold too early."""
    return receiver.quiet_for(seconds, arrived=True)


def overshoot_case(pair: NetnsPair, datapath: Datapath, backend: str, direction: Direction, rate_bps: int,
                   port: int) -> tuple[int, float]:  # fmt: skip
    """(kernel bytes past the budget, receiver L3 bytes past it)."""
    stream = start_stream(pair, port, direction.value, seconds=60)
    try:
        with backend_for(backend, pair, datapath) as enforcer:
            datapath.set_process_slot(stream.app_pid, SLOT)
            enforcer.reconcile(
                {direction: {SLOT: ClassSpec(rate_bps, default_burst_bytes(rate_bps))}}
            )
            time.sleep(1.5)
            budget = int(rate_bps * QUOTA_SECONDS)
            set_at = time.monotonic()  # the sink's read bytes then and once quiet, by its clock
            datapath.gates.set(SLOT, direction, GateSetting(budget_bytes=budget))
            eventually(lambda: _quiet(stream.receiver, 0.5), QUOTA_SECONDS * 4 + 5)
            counted = datapath.gates.used_since_set(SLOT, direction)
            assert counted is not None
            read = stream.receiver.counted_at(time.monotonic()) - stream.receiver.counted_at(set_at)
            received = read * L3_PER_PAYLOAD
            datapath.gates.set(SLOT, direction, OPEN)
            datapath.set_process_slot(stream.app_pid, 0)
            return counted[0] - budget, received - budget
    finally:
        stream.stop()


def overshoot(rates: list[int], backends: list[str]) -> None:
    print(
        f"# quota overshoot, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}"
    )
    print(
        "| backend | direction | rate | budget | kernel count past the budget | receiver (L3) past it |"
    )
    print("|---|---|---|---|---|---|")
    datapath = Datapath()
    datapath.open()
    port = 5800
    try:
        with netns_pair() as pair:
            for backend in backends:
                for direction in (Direction.DOWN, Direction.UP):
                    for rate in rates:
                        port += 1
                        kernel, received = overshoot_case(
                            pair, datapath, backend, direction, rate, port
                        )
                        print(
                            f"| {backend} | {direction.value} | {rate / MiB:g} MiB/s | {int(rate * QUOTA_SECONDS)} B "
                            f"| {kernel:+d} B | {received:+.0f} B |",
                            flush=True,
                        )
    finally:
        datapath.close()


def _block_round(
    bus: PrivateSystemBus, pair: NetnsPair, protocol: str, port: int, scope: Path
) -> tuple[float, float]:
    """(call seconds, seconds from the call to the last byte) of one block."""
    udp = protocol == "udp"
    server = spawn(nsenter_argv(pair.peer_ns, [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "source",
                                               "--port", str(port), "--seconds", "30"] + (["--udp"] if udp else [])),
                   None)  # fmt: skip
    wait_for_line(server, "listening")
    app = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-c", SINK, pair.peer_addr, str(port), protocol,
                                            str(QUIET_S)]), scope)  # fmt: skip
    try:
        wait_for_line(app, "connected")
        time.sleep(1.0)  # flowing at full speed
        called = time.monotonic()
        call_helper(bus.address, lambda c: c.set_blocked(BENCH_APP, Direction.DOWN, True))
        returned = time.monotonic()
        assert app.stdout is not None
        last = float(app.stdout.readline())
        app.wait(timeout=10)
        call_helper(bus.address, lambda c: c.set_blocked(BENCH_APP, None, False))
        return returned - called, last - called
    finally:
        for process in (app, server):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


def block_latency(rounds: int) -> None:
    print(
        f"# block latency, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}"
    )
    print("| protocol | SetBlocked call (median, max) | call to last byte (median, max) | rounds |")
    print("|---|---|---|---|")
    with PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-gates-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state)), \
            app_scope(cgroup2_mount(), own_names.desktop_id("BenchBlock")) as scope:  # fmt: skip
        for protocol in ("tcp", "udp"):
            results = [_block_round(bus, pair, protocol, 5900 + i + (50 if protocol == "udp" else 0), scope)
                       for i in range(rounds)]  # fmt: skip
            calls, lasts = [r[0] * 1000 for r in results], [r[1] * 1000 for r in results]
            print(
                f"| {protocol} | {statistics.median(calls):.1f} ms, {max(calls):.1f} ms | "
                f"{statistics.median(lasts):.1f} ms, {max(lasts):.1f} ms | {rounds} |",
                flush=True,
            )
            print(
                json.dumps({"protocol": protocol, "call_ms": calls, "last_byte_ms": lasts}),
                file=sys.stderr,
            )


def dead_helper(rounds: int) -> None:
    """With a block in force, SIGKILL the helper: how long until traffic flows
    again (the lease running out: fail open)."""
    print(
        f"# a killed helper's block, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    opened = []
    with PrivateSystemBus() as bus, netns_pair() as pair, \
            app_scope(cgroup2_mount(), own_names.desktop_id("BenchBlock")) as scope:  # fmt: skip
        for round_ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="ct-gates-") as state, \
                    HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state)) as helper:  # fmt: skip
                stream = start_stream(
                    pair, 5960 + round_, "down", udp=True, app_cgroup=scope, seconds=60
                )
                try:
                    eventually(lambda stream=stream: stream.receiver.total_bytes() > 0, 5)
                    call_helper(
                        bus.address, lambda c: c.set_blocked(BENCH_APP, Direction.DOWN, True)
                    )
                    eventually(lambda stream=stream: _quiet(stream.receiver, 0.3), 3)
                    helper.kill()
                    killed = time.monotonic()
                    # when the sink counted bytes again, by its clock, not when we read them
                    receiver = stream.receiver
                    assert eventually(
                        lambda r=receiver, k=killed: r.counted_more_at(k) is not None,
                        15,
                        interval_s=0.01,
                    ), "no traffic 15 s after the SIGKILL"
                    again = receiver.counted_more_at(killed)
                    assert again is not None
                    opened.append(again - killed)
                finally:
                    stream.stop()
    print(
        f"traffic flowed again {statistics.median(opened):.2f} s (median; max {max(opened):.2f} s) after the "
        f"SIGKILL, {rounds} rounds: {', '.join(f'{s:.2f}' for s in opened)}"
    )


def gate_cost(blocks: int) -> None:
    """ns per run of this datapath's chadt_ingress and chadt_egress on one TCP
    download, in alternating 0.5 s phases: the socket untagged (slot 0: no gate
    lookup), tagged with its gate open (the lookup, flags 0), and tagged under
    a quota too large to spend (the lookup, the lease's clock read, an atomic
    add). Medians over ABCCBA blocks; other sockets of the machine run the
    same programs meanwhile (noise, the same in every phase)."""
    from chadthrottle.helper.kernel import bpf_syscalls

    print(
        f"# gate cost per packet, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    datapath = Datapath()
    datapath.open()
    stats_fd = bpf_syscalls.enable_run_time_stats()
    phases: dict[str, list[tuple[float, float]]] = {
        "untagged": [],
        "open gate": [],
        "quota gate": [],
    }
    try:
        with netns_pair() as pair:
            stream = start_stream(pair, 5990, "down", seconds=blocks * 3 + 10)
            programs = {
                name: datapath._loaded.program_fds[name]
                for name in ("chadt_ingress", "chadt_egress")
            }  # type: ignore[union-attr]

            def run(phase: str) -> None:
                slot = 0 if phase == "untagged" else SLOT
                datapath.set_process_slot(stream.app_pid, slot)
                datapath.gates.set(
                    SLOT,
                    Direction.DOWN,
                    GateSetting(budget_bytes=2**60) if phase == "quota gate" else OPEN,
                )
                time.sleep(0.1)
                before = {n: bpf_syscalls.program_run_stats(fd) for n, fd in programs.items()}
                time.sleep(0.5)
                after = {n: bpf_syscalls.program_run_stats(fd) for n, fd in programs.items()}
                per_run = [
                    (after[n][0] - before[n][0]) / max(1, after[n][1] - before[n][1])
                    for n in programs
                ]
                phases[phase].append((per_run[0], per_run[1]))

            try:
                for _ in range(blocks):
                    for phase in (
                        "untagged",
                        "open gate",
                        "quota gate",
                        "quota gate",
                        "open gate",
                        "untagged",
                    ):
                        run(phase)
            finally:
                datapath.gates.set(SLOT, Direction.DOWN, OPEN)
                datapath.set_process_slot(stream.app_pid, 0)
                stream.stop()
    finally:
        os.close(stats_fd)
        datapath.close()
    print("| socket | chadt_ingress ns/run (median) | chadt_egress ns/run (median) | windows |")
    print("|---|---|---|---|")
    for phase, runs in phases.items():
        print(
            f"| {phase} | {statistics.median(r[0] for r in runs):.1f} | {statistics.median(r[1] for r in runs):.1f} "
            f"| {len(runs)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("overshoot", "block-latency", "dead-helper", "gate-cost"))
    parser.add_argument("--rates", default="1M,10M,50M")
    parser.add_argument("--backends", default="tc,ebpf")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    if arguments.what == "overshoot":
        overshoot(
            [parse_rate(r) for r in arguments.rates.split(",")], arguments.backends.split(",")
        )
    elif arguments.what == "gate-cost":
        gate_cost(arguments.rounds)
    elif arguments.what == "block-latency":
        block_latency(arguments.rounds)
    else:
        dead_helper(arguments.rounds)


if __name__ == "__main__":
    main()
