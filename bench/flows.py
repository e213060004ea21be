"""Flows between the namespaces of a tests.support.netns pair, and the counters
the benchmark reads to judge them, none of which come from the helper.

What a limit counts is bytes on the wire at L3: every IP packet with its IP and
transport headers. The receiving socket's own counters give that per flow,
after the shaper or policer, for both backends:
  TCP: tcpi_data_segs_in * MTU. tcp_info counts the segments a GSO super-packet
       stands for, and a bulk sender (a full send queue) sends only full-size
       segments: MSS + IP + TCP header with timestamps = 1500 bytes at L3, for
       IPv4 and IPv6 alike. Retransmitted segments count: they crossed the wire.
       Cross-check, exact for any segment size but lagging the wire while a
       loss leaves a hole: tcpi_bytes_received + segments * (IP + TCP header),
       52 bytes for IPv4, 72 for IPv6 (l3_bytes_in_order).
  UDP: payload + datagrams * (IP + UDP header): 28 bytes, 48 for IPv6.
The tc backend's HTB class counters are read as a cross-check (bytes minus the
14-byte Ethernet header per packet; HTB counts GSO packets per segment).
"""

from __future__ import annotations

import bisect
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.netns import NetnsPair, nsenter_argv, wait_for_line

ENDPOINT = Path(__file__).with_name("endpoint.py")
ETH_HEADER_BYTES = 14
TCP_HEADER_BYTES = {4: 20 + 20 + 12, 6: 40 + 20 + 12}  # IP + TCP + timestamps option
UDP_HEADER_BYTES = {4: 20 + 8, 6: 40 + 8}
MTU = 1500


class Reports:
    """A process's JSON lines, each stamped with the benchmark's clock."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.times: list[float] = []
        self.values: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            report = json.loads(line)
            if "t" in report:
                with self._lock:  # when the endpoint saw it, not when we read the pipe
                    self.times.append(float(report.get("mono", time.monotonic())))
                    self.values.append(report)

    def latest(self) -> tuple[float, dict[str, Any]]:
        with self._lock:
            if not self.times:
                return time.monotonic(), {}
            return self.times[-1], self.values[-1]

    def series(self, since: float) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            start = bisect.bisect_left(self.times, since)
            return list(zip(self.times[start:], self.values[start:], strict=True))

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)


@dataclass
class Flow:
    """One connection: an application in the host namespace (in its own app
    scope when given) and a server in the peer namespace."""

    direction: str  # "up": the application sends; "down": it receives
    udp: bool
    family: int
    app: subprocess.Popen[str]
    peer: subprocess.Popen[str]
    sink: Reports
    source: Reports
    gate_open: bool = False
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def app_pid(self) -> int:
        return self.app.pid

    def header_bytes(self) -> int:
        return (UDP_HEADER_BYTES if self.udp else TCP_HEADER_BYTES)[self.family]

    def l3_bytes(self, report: dict[str, Any]) -> int:
        """Cumulative bytes on the wire at L3 so far, from a sink report."""
        if not report:
            return 0
        if self.udp:
            return int(report["bytes"]) + int(report["dgrams"]) * self.header_bytes()
        return int(report["segs"]) * MTU

    def l3_bytes_in_order(self, report: dict[str, Any]) -> int:
        """The same from in-order bytes: exact for any segment size, but behind
        the wire while a loss leaves a hole (downloads through a drop queue)."""
        if not report or self.udp:
            return self.l3_bytes(report)
        return int(report["rcvd"]) + int(report["segs"]) * self.header_bytes()

    def open_gate(self) -> None:
        """Let a gated application start (see start_flow)."""
        if not self.gate_open:
            assert self.app.stdin is not None
            self.app.stdin.write("go\n")
            self.app.stdin.close()
            self.gate_open = True

    def stop(self) -> None:
        for process in (self.app, self.peer):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        for reports in (self.sink, self.source):
            if reports is not None:  # a gated flow stopped before begin() has none
                reports.join(5.0)
        for process in (self.app, self.peer):
            if process.stdout is not None:
                process.stdout.close()


def start_flow(
    pair: NetnsPair,
    port: int,
    direction: str,
    *,
    udp: bool = False,
    family: int = 4,
    app_cgroup: Path | None = None,
    gated: bool = False,
    seconds: float = 60.0,
    congestion: str | None = None,
) -> Flow:
    """Start a bulk flow. gated: the application process is created (in its
    scope, so a limit can be set on its pid) but opens its socket only after
    Flow.open_gate(), so the limit holds from the first packet."""
    python = sys.executable
    common = ["--port", str(port), "--family", str(family), "--seconds", str(seconds)] + (
        ["--udp"] if udp else []
    )
    common += ["--congestion", congestion] if congestion else []
    peer_role, app_role = ("sink", "source") if direction == "up" else ("source", "sink")
    peer = subprocess.Popen(
        nsenter_argv(pair.peer_ns, [python, str(ENDPOINT), "serve", "--role", peer_role, *common]),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    wait_for_line(peer, "listening")
    host = pair.peer_addr6 if family == 6 else pair.peer_addr
    argv = nsenter_argv(
        pair.host_ns,
        [python, str(ENDPOINT), "connect", "--host", host, "--role", app_role, *common],
    )
    prologue = f'echo $$ > "{app_cgroup}/cgroup.procs" && ' if app_cgroup else ""
    if gated:
        prologue += "read _ && "
    app = subprocess.Popen(
        ["sh", "-c", prologue + 'exec "$@"', "sh", *argv],
        stdin=subprocess.PIPE if gated else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    if app_cgroup is not None:  # the shell has moved itself into the scope
        deadline = time.monotonic() + 5
        while str(app.pid) not in (app_cgroup / "cgroup.procs").read_text().split():
            if time.monotonic() > deadline:
                raise TimeoutError("the application did not enter its scope")
            time.sleep(0.01)
    flow = Flow(direction, udp, family, app, peer, sink=None, source=None, gate_open=not gated)  # type: ignore[arg-type]
    if not gated:
        _start_reading(flow)
    return flow


def begin(flow: Flow) -> None:
    """Open a gated flow's gate and wait until it is connected."""
    flow.open_gate()
    _start_reading(flow)


def _start_reading(flow: Flow) -> None:
    if not flow.udp:
        wait_for_line(flow.app, "connected")
    app_reports, peer_reports = Reports(flow.app), Reports(flow.peer)
    flow.sink, flow.source = (
        (peer_reports, app_reports) if flow.direction == "up" else (app_reports, peer_reports)
    )
    deadline = time.monotonic() + 5
    while not flow.sink.latest()[1] and time.monotonic() < deadline:
        time.sleep(0.01)


# --- counters outside the flows ----------------------------------------------------


def _tc_json(netns: str, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(["tc", "-n", netns, "-s", "-j", *args], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return list(json.loads(result.stdout))


def ifb_devices(netns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "link", "show"], capture_output=True, text=True
    ).stdout
    return [
        link["ifname"] for link in json.loads(out or "[]") if link["ifname"].startswith("ctifb")
    ]


_CLASS_STATS = re.compile(r"^class htb (\S+) .*?\n\s*Sent (\d+) bytes (\d+) pkt", re.M)


@dataclass(frozen=True)
class TcSnapshot:
    time: float
    drops: int  # every qdisc on the uplink and the IFBs
    classes: dict[tuple[str, str], tuple[int, int]]  # (device, class id) -> (bytes, packets)


def tc_snapshot(pair: NetnsPair) -> TcSnapshot:
    drops = 0
    classes = {}
    for device in [pair.host_if, *ifb_devices(pair.host_ns)]:
        for qdisc in _tc_json(pair.host_ns, "qdisc", "show", "dev", device):
            drops += int(qdisc.get("drops", 0))
        # tc 6.1 prints HTB class statistics as text even with -j
        text = subprocess.run(
            ["tc", "-n", pair.host_ns, "-s", "class", "show", "dev", device],
            capture_output=True,
            text=True,
        ).stdout
        for handle, sent_bytes, packets in _CLASS_STATS.findall(text):
            if not handle.endswith(":ffff"):
                classes[(device, handle)] = (int(sent_bytes), int(packets))
    return TcSnapshot(time.monotonic(), drops, classes)


def htb_l3_rate(
    before: TcSnapshot, after: TcSnapshot, direction: str, pair: NetnsPair, rate_bps: int
) -> float | None:
    """L3 rate of the limited class for this direction whose configured rate
    is rate_bps (the tc backend; None when there is no such class)."""
    rates = []
    for (device, handle), (after_bytes, after_packets) in after.classes.items():
        if (device == pair.host_if) != (direction == "up"):
            continue
        before_bytes, before_packets = before.classes.get(
            (device, handle), (after_bytes, after_packets)
        )
        l3 = (after_bytes - before_bytes) - ETH_HEADER_BYTES * (after_packets - before_packets)
        rates.append(l3 / (after.time - before.time))
    if not rates:
        return None
    return min(rates, key=lambda r: abs(r - rate_bps))
