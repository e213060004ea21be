"""Where a download limit landing on a full-speed TCP download loses segments,
and what the application reads meanwhile (issue 13: "converged within 0.5 s").

    sudo .venv/bin/python -m bench.landing_loss [--rates 307200,1048576,10485760]
        [--cc bbr,cubic] [--family 6] [--runs 3] [--stop-sender 0.3] [--busy 2]

The real helper (tc backend, in the "host" namespace of a veth pair, on a
private system bus) limits a download that runs at full speed. Per run:
how long SetLimit took (it clamps the windows and waits for the old ones
first), what the application read over 0-0.5 s and 0-1 s after the call
returned and 1-4 s after it began (payload x 1500/(1500 - headers), over the limit), the settle
time of 0.25 s windows as bench.limits counts it, the sender's
retransmissions (its namespace's TcpRetransSegs), the drops of each qdisc
on the IFB (HTB root, leaf), and the sender's
largest unacked and lost counts (ss -ti, sampled every 20 ms) in the first
1.5 s (LOSS13_TIMELINE=1: the sender's unacked, snd_wnd, cwnd and lost and
the receiver's rcv_wnd and rcv_ssthresh over that time, on stderr).
--stop-sender S stops the sender (SIGSTOP) just before the call and lets
it go on S seconds later: a sender the CPU load holds back while the
helper waits for its old window, made deterministic. --busy N: N busy loops
beside. docs/benchmarks.md, "A limit landing on a held-back sender".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from bench.flows import MTU, Flow, ifb_devices, start_flow
from bench.limits import machine_load, settle_time
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, netns_pair, nsenter_argv

START_TIMEOUT_S = 150.0
OBSERVE_S = 4.5
SAMPLE_S = 0.02
SAMPLED_S = 1.5
TIMELINE = bool(os.environ.get("LOSS13_TIMELINE"))


def _retrans_segs(netns: str) -> int:
    """The namespace's TcpRetransSegs (/proc/net/snmp is per namespace)."""
    text = subprocess.run(nsenter_argv(netns, ["cat", "/proc/net/snmp"]),
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    heads, values = (line.split() for line in text.splitlines() if line.startswith("Tcp:"))
    return int(values[heads.index("RetransSegs")])


def _qdisc_drops(netns: str) -> dict[str, int]:
    """Drops of every qdisc on the namespace's IFBs, by "kind handle"."""
    drops = {}
    for device in ifb_devices(netns):
        shown = subprocess.run(["tc", "-n", netns, "-s", "-j", "qdisc", "show", "dev", device],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        for qdisc in json.loads(shown or "[]"):
            drops[f"{qdisc['kind']} {qdisc['handle']}"] = int(qdisc.get("drops", 0))
    return drops


@contextlib.contextmanager
def _busy_loops(count: int) -> Iterator[None]:
    """count processes spinning beside the runs: the load the loss was seen at."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


class SenderSampler:
    """The sender's ss -ti, every SAMPLE_S: the largest unacked and lost."""

    def __init__(self, netns: str, port: int, side: str = "sport",
                 keys: tuple[str, ...] = ("unacked", "snd_wnd", "cwnd", "lost")) -> None:  # fmt: skip
        """side, keys: "dport" and e.g. ("rcv_wnd", "rcv_ssthresh") sample the receiver."""
        self.argv = nsenter_argv(netns, ["ss", "-tinH", f"{side} = :{port}"])
        self.keys = keys
        self.unacked = self.lost = self.cwnd = 0
        self.timeline: list[tuple[float, str]] = []  # (time, "unacked snd_wnd cwnd lost")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            text = subprocess.run(self.argv, capture_output=True, text=True).stdout
            shown = [re.search(rf"\b{key}:(\d+)", text) for key in self.keys]
            self.timeline.append(
                (time.monotonic(), " ".join(m.group(1) if m else "-" for m in shown))
            )
            for key in ("unacked", "lost", "cwnd"):
                found = re.search(rf"\b{key}:(\d+)", text)
                if found:
                    setattr(self, key, max(getattr(self, key), int(found.group(1))))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


@dataclass
class Run:
    cc: str
    rate: int
    call_s: float
    read_0_05: float
    read_0_1: float
    read_1_4: float
    settle_s: float | None
    retrans_during_call: int
    retrans_after: int
    qdisc_drops: dict[str, int]
    max_unacked: int
    max_lost: int
    load: str


def _ratio(read: list[tuple[float, float]], start: float, end: float, rate: int) -> float:
    inside = [(t, v) for t, v in read if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) / rate


def _pause(pid: int, seconds: float) -> threading.Timer | None:
    """Stop pid now and let it go on after seconds: a sender that gets no CPU
    while the helper waits for its old window (the loss seen at load 2-13)."""
    if seconds <= 0:
        return None
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.start()
    return timer


def landing(bus: str, pair: NetnsPair, port: int, rate: int, cc: str,
            family: int, stop_s: float = 0.0) -> Run:  # fmt: skip
    tag = secrets.token_hex(3)
    load = machine_load()
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchLoss13{tag}")) as scope:
        flow: Flow = start_flow(pair, port, "down", family=family, app_cgroup=scope, congestion=cc,
                                seconds=30)  # fmt: skip
        app = ""
        try:
            time.sleep(1.5)  # at full speed
            retrans, drops = _retrans_segs(pair.peer_ns), _qdisc_drops(pair.host_ns)
            sampler = SenderSampler(pair.peer_ns, port)
            receiver = SenderSampler(pair.host_ns, port, "dport", ("rcv_wnd", "rcv_ssthresh"))
            began = time.monotonic()
            paused = _pause(flow.peer.pid, stop_s)
            app = call_helper(
                bus, lambda c: c.set_limit(f"pid:{flow.app_pid}", Direction.DOWN, rate)
            )
            call_s = time.monotonic() - began
            retrans_at_return = _retrans_segs(pair.peer_ns)
            if paused is not None:
                paused.join()
            time.sleep(max(0.0, SAMPLED_S - call_s))
            sampler.stop()
            receiver.stop()
            if TIMELINE:  # the sender's, then the receiver's
                for timeline in (sampler.timeline, receiver.timeline):
                    print(" ".join(f"{t - began:.2f}:[{v}]" for t, v in timeline), file=sys.stderr)
            time.sleep(max(0.0, began + OBSERVE_S - time.monotonic()))
            after = _qdisc_drops(pair.host_ns)
            header = flow.header_bytes()
            read = [
                (t, r["bytes"] * MTU / (MTU - header)) for t, r in flow.sink.series(began - 0.5)
            ]
            return Run(
                cc, rate, call_s,
                _ratio(read, began + call_s, began + call_s + 0.5, rate),
                _ratio(read, began + call_s, began + call_s + 1.0, rate),
                _ratio(read, began + 1.0, began + 4.0, rate),
                settle_time(read, rate, began, began + OBSERVE_S),
                retrans_at_return - retrans, _retrans_segs(pair.peer_ns) - retrans_at_return,
                {k: v - drops.get(k, 0) for k, v in after.items() if v - drops.get(k, 0)},
                sampler.unacked, sampler.lost,
                f"{load} -> {machine_load()}",
            )  # fmt: skip
        finally:
            if app:
                call_helper(bus, lambda c: c.clear_limit(app))
            flow.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.landing_loss", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--rates", default="307200,1048576,10485760", help="bytes/s, comma-separated"
    )
    parser.add_argument("--cc", default="bbr,cubic")
    parser.add_argument("--family", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stop-sender", type=float, default=0.0,
                        help="SIGSTOP the sender from the call on for this long (s)")  # fmt: skip
    parser.add_argument("--busy", type=int, default=0, help="busy loops beside (load)")
    arguments = parser.parse_args(argv)
    ports = iter(range(9600, 9999))
    print("| cc | limit | run | call s | read 0-0.5 s | 0-1 s | 1-4 s  | settled s | resent in call | after "
          "| qdisc drops | max unacked | max lost | load |")  # fmt: skip
    print("|---" * 14 + "|")
    with contextlib.ExitStack() as stack, PrivateSystemBus() as bus, netns_pair() as pair, tempfile.TemporaryDirectory(prefix="ct-loss13-") as state, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                          start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        stack.enter_context(_busy_loops(arguments.busy))
        for rate in (int(r) for r in arguments.rates.split(",")):
            for cc in arguments.cc.split(","):
                for run in range(1, arguments.runs + 1):
                    r = landing(bus.address, pair, next(ports), rate, cc,
                                arguments.family, arguments.stop_sender)  # fmt: skip
                    drops = ", ".join(f"{k}: {v}" for k, v in sorted(r.qdisc_drops.items())) or "0"
                    settle = f"{r.settle_s:.2f}" if r.settle_s is not None else "never"
                    print(f"| {cc} | {rate} | {run} | {r.call_s:.2f} | {r.read_0_05:.2f} | "
                          f"{r.read_0_1:.2f} | {r.read_1_4:.3f} | {settle} | {r.retrans_during_call} | {r.retrans_after} | {drops} "
                          f"| {r.max_unacked} | {r.max_lost} | {r.load} |",
                          flush=True)  # fmt: skip
        if helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
