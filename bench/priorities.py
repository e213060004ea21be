"""Does a call stay smooth while a bulk upload and a bulk download fill the link?

The link's bottleneck is a modem in miniature on the far side of the veth
(bench/bottleneck.py: tbf at the link rate with `--buffer-ms` of queue, both
ways), the servers behind it. The real helper (tc backend, on a private system bus) runs in the host
namespace. Three applications, each in an app scope of its own:

  call      small UDP packets at 50/s each way (bench/call_probe.py): its
            round trip (median, p95, p99) and loss
  upload    a bulk TCP upload (--flows connections)
  download  a bulk TCP download (--flows connections)

Cases:
  idle      the call alone
  loaded    all three, without ChadThrottle
  prioritized  all three, the call critical and the link shaped just under its
            capacity by the priority tree (bench/priority_model.py: the tree
            the helper is to build, classified by port until it does), small
            TCP packets (acknowledgements) high (--acks)
  tagged    as prioritized, but built and classified by the helper's kernel
            layer (bench/priority_shaper.py: TcShaper with a link capacity
            per direction, the call's sockets tagged by its app scope, all
            else through the catch-all into the default class, its small TCP
            packets (acknowledgements) into the tree's own class for them, high
            (htb.ACK_MINOR); --tag-download: the bulk download in a normal
            class of its own)
  helper    as tagged, but through the real helper process
            (bench/priority_helper.py): SetLinkCapacity and the call's
            application critical by SetPriority over D-Bus; the bulk
            applications without a rule, as a user's would be
  slowed    as prioritized, but the link drops to --slow-share of its rate
            halfway through the call, and the tree keeps the capacity it was
            given (no estimation yet): the second half is shown, its shares
            of the slower link
  capped    all three, the bulk applications limited to --cap-share of the
            link each way (a plain limit, no priorities: what a user could
            do before priorities)

--rt-receivers (a diagnostic, not a user's setting) makes the bulk download
application's processes real-time (SCHED_FIFO 10): the queue left at the
modem under the tree is then gone, so it was theirs (docs/benchmarks.md,
"Why a queue stayed at the modem").

    sudo .venv/bin/python -m bench.priorities [--down 2.5M] [--up 625K] [--buffer-ms 400]
        [--seconds 10] [--flows 4] [--cases idle,loaded,prioritized,tagged,slowed,capped]

Throughput is the receiver's payload over the call's window, shown as a
share of the link at L2 as tbf counts it (payload x 1514/1448); "link used"
is what the modem sent over the same time (bulk, call and the other
direction's acknowledgements: about 8% of a 4:1 link's upload carries the
download's), as a share of its rate. "modem queue" is the 99th percentile of the modem's
backlog sampled every 0.1 s, in time at its rate: the wait there, apart
from this machine's own scheduling (which the call's p99 also holds).
The last table
sets the cases side by side, each application's throughput included (the
call's: its echoes' UDP/IP bytes each way). docs/benchmarks.md
("Priorities") keeps runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.priority import Priority, parse_priority
from chadthrottle.units import parse_rate

from bench.bottleneck import Internet, modem
from bench.limits import slope
from bench.priority_helper import shaped_by_the_helper
from bench.priority_model import prioritized
from bench.priority_shaper import CALL_SLOT, DOWNLOAD_SLOT, shaped_by_the_helpers_kernel
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    Stream,
    app_scope,
    netns_pair,
    nsenter_argv,
    spawn,
    wait_for_line,
)

TO_L2 = 1514 / 1448  # a full TCP segment's payload -> its frame, as tbf counts it
# capped last: the helper may keep its hooks a while after its limits go
CASES = ("idle", "loaded", "prioritized", "tagged", "slowed", "helper", "capped")
HELPER_CASES = ("helper", "capped")  # the cases that need the helper process
START_TIMEOUT_S = 150.0
CALL_PORT = 5004
CALL_RATE = 50  # packets/s each way: bench/call_probe.py's default
CALL_L3_BYTES = 200 + 28  # bench/call_probe.py's default payload, and its UDP and IPv4 headers
QUEUE_SAMPLE_S = 0.1
# A real path's minimum RTT is milliseconds; a veth's is microseconds, and
# below 512 us TCP adds a whole 64 KB GSO frame to every burst it sends
# (tcp_tso_autosize): 100 ms of a 5 Mbit/s link in one packet. 0 turns that
# off in the bench's namespaces, so TCP sends as it would over the internet.
TSO_RTT_LOG = 0


@dataclass(frozen=True)
class CallResult:
    sent: int
    rtts_ms: list[float]
    sequences: list[int]  # the packet each round trip is of
    up_ms: list[float] = field(default_factory=list)  # each round trip's way out to the echo
    down_ms: list[float] = field(default_factory=list)  # ... and back
    started_ns: int | None = None  # packet n was due at this + n / CALL_RATE s (time.monotonic_ns)

    def sent_from(self, first: int) -> CallResult:
        """The packets sent from number `first` on."""
        kept = [i for i, n in enumerate(self.sequences) if n >= first]
        return CallResult(self.sent - first, [self.rtts_ms[i] for i in kept], [self.sequences[i] for i in kept],
                          [self.up_ms[i] for i in kept if i < len(self.up_ms)],
                          [self.down_ms[i] for i in kept if i < len(self.down_ms)])  # fmt: skip

    @property
    def loss(self) -> float:
        return 1 - len(self.rtts_ms) / self.sent if self.sent else 1.0

    def percentile(self, share: float) -> float:
        return _percentile(self.rtts_ms, share)

    def throughput_bps(self) -> float:
        """Each way, L3: the echoed packets over the time they were sent in."""
        return len(self.rtts_ms) * CALL_L3_BYTES * CALL_RATE / self.sent if self.sent else 0.0


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass(frozen=True)
class CaseResult:
    name: str
    call: CallResult
    up_bps: float  # the bulk application's, L2, as the modem counts
    down_bps: float
    link_up: float  # share of the link the modem sent (everything: bulk, call, acknowledgements)
    link_down: float
    rates: tuple[int, int]  # the link's (down, up) the shares are of
    modem_queue_ms: tuple[float, float] = (
        0.0,
        0.0,
    )  # p99 of the sampled backlog, in time at its rate (down, up)


class Bench:
    def __init__(self, bus: PrivateSystemBus | None, pair: NetnsPair, internet: Internet, down_bps: int, up_bps: int,
                 cap_share: float, congestion: str, flows: int, slow_share: float = 0.7) -> None:  # fmt: skip
        self.bus, self.pair, self.internet, self.congestion, self.flows = (
            bus,
            pair,
            internet,
            congestion,
            flows,
        )
        self.slow_share = slow_share
        self.acks: Priority | None = None
        self.tag: Callable[[Path, int], None] | None = (
            None  # "tagged": (app scope, slot) into its class
        )
        self.tag_download = (
            False  # "tagged": the bulk download application in a normal class of its own
        )
        self.rt_receivers = (
            False  # diagnostic: the bulk download application's processes SCHED_FIFO
        )
        self.call_scope: Path | None = (
            None  # "helper": the call's app scope, made before the helper is asked
        )
        self.down_bps, self.up_bps, self.cap_share = down_bps, up_bps, cap_share
        self._ports = iter(range(7100, 8000))

    @contextlib.contextmanager
    def bulk(self) -> Iterator[tuple[list[Stream], list[Stream]]]:
        """The upload application's streams and the download application's."""
        tag = secrets.token_hex(3)
        with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchUpload{tag}")) as up_scope, \
                app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchDownload{tag}")) as down_scope, \
                app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchServer{tag}")) as peer_scope:  # fmt: skip
            streams: dict[str, list[Stream]] = {"up": [], "down": []}
            if self.tag is not None and self.tag_download:
                self.tag(down_scope, DOWNLOAD_SLOT)
            try:
                for _ in range(self.flows):
                    streams["up"].append(self._bulk_stream("up", up_scope, peer_scope))
                    streams["down"].append(self._bulk_stream("down", down_scope, peer_scope))
                    if self.rt_receivers:
                        subprocess.run(
                            ["chrt", "-f", "-p", "10", str(streams["down"][-1].app_pid)], check=True
                        )
                yield streams["up"], streams["down"]
            finally:
                for stream in streams["up"] + streams["down"]:
                    stream.stop()

    def _bulk_stream(self, direction: str, app_cgroup: Path, peer_cgroup: Path) -> Stream:
        """start_stream's TCP stream, with the bench's congestion control on both ends."""
        port = next(self._ports)
        common = ["--port", str(port), "--seconds", "120", "--congestion", self.congestion]
        peer_role, app_role = ("sink", "source") if direction == "up" else ("source", "sink")
        script = [sys.executable, str(TRAFFIC_SCRIPT)]
        peer = spawn(
            nsenter_argv(self.internet.netns, [*script, "serve", "--role", peer_role, *common]),
            peer_cgroup,
        )
        wait_for_line(peer, "listening")
        app = spawn(nsenter_argv(self.pair.host_ns, [*script, "connect", "--host", self.internet.addr, "--role",
                                                     app_role, *common]), app_cgroup)  # fmt: skip
        wait_for_line(app, "connected")
        return Stream(app=app, server=peer, receiver=Receiver(app if direction == "down" else peer))

    def call(self, seconds: float) -> CallResult:
        """One call of `seconds`, from an app scope of its own to an echo in the peer namespace."""
        tag = secrets.token_hex(3)
        call_scope = contextlib.nullcontext(self.call_scope) if self.call_scope is not None else \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchCall{tag}"))  # fmt: skip
        with (
            call_scope as scope,
            app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchEcho{tag}")) as echo_scope,
        ):
            if self.tag is not None:
                self.tag(scope, CALL_SLOT)
            echo = spawn(nsenter_argv(self.internet.netns, [sys.executable, "-m", "bench.call_probe", "echo",
                                                          "--port", str(CALL_PORT)]), echo_scope)  # fmt: skip
            try:
                wait_for_line(echo, "listening")
                caller = spawn(nsenter_argv(self.pair.host_ns, [
                    sys.executable, "-m", "bench.call_probe", "call", "--host", self.internet.addr,
                    "--port", str(CALL_PORT), "--seconds", str(seconds)]), scope)  # fmt: skip
                out, _ = caller.communicate(timeout=seconds + 30)
                report = json.loads(out.strip().splitlines()[-1])
                return CallResult(int(report["sent"]), [float(r) for r in report["rtts_ms"]],
                                  [int(n) for n in report["sequences"]], [float(u) for u in report["up_ms"]],
                                  [float(d) for d in report["down_ms"]], report.get("started_ns"))  # fmt: skip
            finally:
                echo.kill()
                echo.wait(timeout=10)
                if echo.stdout is not None:
                    echo.stdout.close()

    def _limit(self, app_pid: int, direction: Direction, rate: int) -> str:
        assert self.bus is not None, "limits need the helper"
        return call_helper(
            self.bus.address, lambda c: c.set_limit(f"pid:{app_pid}", direction, rate)
        )

    def _clear(self, app_id: str) -> None:
        assert self.bus is not None, "limits need the helper"
        call_helper(self.bus.address, lambda c: c.clear_limit(app_id))

    def run(self, name: str, seconds: float, warmup_s: float) -> CaseResult:
        rates = (self.down_bps, self.up_bps)
        if name == "idle":
            return CaseResult(name, self.call(seconds), 0.0, 0.0, 0.0, 0.0, rates)
        shaping = (
            prioritized(self.pair, self.down_bps, self.up_bps, CALL_PORT, acks=self.acks)
            if name in ("prioritized", "slowed")
            else contextlib.nullcontext()
        )
        if name == "tagged":
            shaping = self._tagged()
        if name == "helper":
            shaping = self._through_the_helper()
        with shaping, self.bulk() as (up, down):
            rules: list[str] = []
            try:
                if (
                    name == "capped"
                ):  # limits count L3; the modem L2: a full frame is 1514/1500 of its packet
                    rules.append(self._limit(up[0].app_pid, Direction.UP,
                                             int(self.up_bps * self.cap_share * 1500 / 1514)))  # fmt: skip
                    rules.append(self._limit(down[0].app_pid, Direction.DOWN,
                                             int(self.down_bps * self.cap_share * 1500 / 1514)))  # fmt: skip
                time.sleep(warmup_s)
                return self._measure(name, seconds, up, down)
            finally:
                for app_id in rules:
                    self._clear(app_id)
                if name == "slowed":
                    self.internet.set_rates(self.down_bps, self.up_bps)

    @contextlib.contextmanager
    def _tagged(self) -> Iterator[None]:
        with shaped_by_the_helpers_kernel(self.pair, self.down_bps, self.up_bps) as tag:
            self.tag = tag
            try:
                yield
            finally:
                self.tag = None

    @contextlib.contextmanager
    def _through_the_helper(self) -> Iterator[None]:
        assert self.bus is not None, "the helper case needs the helper"
        with app_scope(cgroup2_mount(), own_names.desktop_id(f"BenchCall{secrets.token_hex(3)}")) as scope, \
                shaped_by_the_helper(self.bus, self.pair, self.down_bps, self.up_bps, scope):  # fmt: skip
            self.call_scope = scope
            try:
                yield
            finally:
                self.call_scope = None

    def _measure(
        self, name: str, seconds: float, up: list[Stream], down: list[Stream]
    ) -> CaseResult:
        """One call over the running bulk; "slowed": the link drops to
        slow_share of its rate halfway, and the second half is what counts."""
        began, sent_before = time.monotonic(), self.internet.sent_bytes()
        rates, first = (self.down_bps, self.up_bps), 0
        if name == "slowed":
            rates = (int(self.down_bps * self.slow_share), int(self.up_bps * self.slow_share))
            first = int(CALL_RATE * seconds / 2)
            mark: list[tuple[float, tuple[int, int]]] = []

            def slow_down() -> None:
                self.internet.set_rates(*rates)
                mark.append((time.monotonic(), self.internet.sent_bytes()))

            timer = threading.Timer(seconds / 2, slow_down)
            timer.start()
        with self._queue_sampler(seconds) as queued:
            call = self.call(seconds)  # returns LATE_GRACE_S after its window at most
        ended, sent_after = time.monotonic(), self.internet.sent_bytes()
        if name == "slowed":
            timer.join()
            began, sent_before = mark[0]
            call = call.sent_from(first)
        spent = ended - began
        window_end = min(ended, began + seconds)
        return CaseResult(name, call, self._rate(up, began, window_end), self._rate(down, began, window_end),
                          (sent_after[1] - sent_before[1]) / spent / rates[1],
                          (sent_after[0] - sent_before[0]) / spent / rates[0], rates,
                          tuple(_percentile([q[i] / rates[i] * 1000 for q in queued], 0.99) for i in (0, 1)))  # fmt: skip

    @contextlib.contextmanager
    def _queue_sampler(self, seconds: float) -> Iterator[list[tuple[int, int]]]:
        """The modem's backlog (down, up) every QUEUE_SAMPLE_S for `seconds`
        (the second half when the link slows): how long a packet waits there,
        apart from this machine's own scheduling."""
        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def sample() -> None:
            ends = time.monotonic() + seconds
            while not stop.wait(QUEUE_SAMPLE_S) and time.monotonic() < ends:
                samples.append(self.internet.backlog_bytes())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield samples
        finally:
            stop.set()
            thread.join()

    @staticmethod
    def _rate(streams: list[Stream], began: float, ended: float) -> float:
        return sum(
            slope([(t, b * TO_L2) for t, b in s.receiver.samples if began <= t <= ended])
            for s in streams
        )


def _format(results: list[CaseResult], bench: Bench) -> str:
    lines = ["| case | call RTT median | p95 | p99 | call loss | bulk upload (share) | bulk download (share) "
             "| link used up / down | modem queue p99 up / down |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        up = f"{r.up_bps / 1e6:.2f} MB/s ({r.up_bps / r.rates[1]:.3f})" if r.up_bps else "-"
        down = f"{r.down_bps / 1e6:.2f} MB/s ({r.down_bps / r.rates[0]:.3f})" if r.down_bps else "-"
        c = r.call
        lines.append(f"| {r.name} | {c.percentile(0.5):.2f} ms | {c.percentile(0.95):.2f} ms | "
                     f"{c.percentile(0.99):.2f} ms | {c.loss:.3%} ({c.sent - len(c.rtts_ms)}/{c.sent}) | {up} | {down} | "
                     f"{r.link_up:.3f} / {r.link_down:.3f} | {r.modem_queue_ms[1]:.1f} / {r.modem_queue_ms[0]:.1f} ms |")  # fmt: skip
    return "\n".join(lines)


def _compare(results: list[CaseResult]) -> str:
    """The cases side by side (without ChadThrottle, with priorities, with a
    fixed cap, ...), each application's throughput as a share of the link."""
    shown = [r for r in results if r.name != "idle"]
    idle = next((r for r in results if r.name == "idle"), None)
    rows: list[tuple[str, Callable[[CaseResult], str]]] = [
        (
            "call RTT median / p99",
            lambda r: f"{r.call.percentile(0.5):.2f} / {r.call.percentile(0.99):.2f} ms",
        ),
        (
            "call one way p99 up / down",
            lambda r: (
                f"{_percentile(r.call.up_ms, 0.99):.2f} / "
                f"{_percentile(r.call.down_ms, 0.99):.2f} ms"
            ),
        ),
        ("call loss", lambda r: f"{r.call.loss:.2%}"),
        ("call throughput each way", lambda r: f"{r.call.throughput_bps() / 1e3:.1f} KB/s"),
        (
            "upload application",
            lambda r: f"{r.up_bps / 1e6:.2f} MB/s ({r.up_bps / r.rates[1]:.3f})",
        ),
        (
            "download application",
            lambda r: f"{r.down_bps / 1e6:.2f} MB/s ({r.down_bps / r.rates[0]:.3f})",
        ),
        ("link used up / down", lambda r: f"{r.link_up:.3f} / {r.link_down:.3f}"),
        (
            "modem queue p99 up / down",
            lambda r: f"{r.modem_queue_ms[1]:.1f} / {r.modem_queue_ms[0]:.1f} ms",
        ),
    ]
    if idle is not None:
        rows.insert(1, ("added to idle: median / p99", lambda r: f"{r.call.percentile(0.5) - idle.call.percentile(0.5):+.2f} / "
                        f"{r.call.percentile(0.99) - idle.call.percentile(0.99):+.2f} ms"))  # fmt: skip
    lines = ["| | " + " | ".join(r.name for r in shown) + " |", "|---" * (len(shown) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in shown) + " |" for label, cell in rows]
    return "\n".join(lines)


def _rate_arg(text: str) -> int:
    """Bytes/s from common/units (2.5M, 625K, ...)."""
    rate = parse_rate(text)
    if not rate:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}")
    return int(rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.priorities", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--down",
        type=_rate_arg,
        default=_rate_arg("2.5M"),
        help="link download rate, bytes/s (default 2.5M: 20 Mbit/s)",
    )
    parser.add_argument(
        "--up",
        type=_rate_arg,
        default=_rate_arg("625K"),
        help="link upload rate, bytes/s (default 625K: 5 Mbit/s)",
    )
    parser.add_argument(
        "--buffer-ms", type=float, default=400.0, help="the modem's queue, in time at its rate"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="the call's length, and the measuring window"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=4.0, help="bulk traffic before the call starts"
    )
    parser.add_argument(
        "--cap-share", type=float, default=0.8, help="the capped case's limit, a share of the link"
    )
    parser.add_argument(
        "--congestion",
        default="cubic",
        help="TCP congestion control of the bulk transfers "
        "(default cubic: Linux's and Windows' default, which fills a modem's buffer)",
    )
    parser.add_argument(
        "--acks",
        default="high",
        help="the tree puts small TCP packets (acknowledgements) in a "
        "class of their own at this priority (critical, high, normal, low, or none; default high)",
    )
    parser.add_argument(
        "--slow-share", type=float, default=0.7, help="the slowed case's link rate halfway, a share"
    )
    parser.add_argument(
        "--flows",
        type=int,
        default=4,
        help="TCP connections of each bulk application "
        "(an updater opens several; one alone is held back by its receive window here)",
    )
    parser.add_argument(
        "--tag-download",
        action="store_true",
        help="tagged: the bulk download application "
        "gets a class of its own at normal priority (its pure acknowledgements stay in the tree's "
        "class for them, as without: bench/ack_wait.py)",
    )
    parser.add_argument(
        "--rt-receivers",
        action="store_true",
        help="diagnostic: the bulk download application's "
        "processes real-time (SCHED_FIFO 10), so their scheduling delays do not bunch its "
        "acknowledgements",
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {','.join(CASES)}"
    )
    arguments = parser.parse_args(argv)
    acks = None if arguments.acks == "none" else parse_priority(arguments.acks)
    cases = arguments.cases.split(",")
    if not set(cases) <= set(CASES):
        parser.error(f"unknown case in --cases: {', '.join(sorted(set(cases) - set(CASES)))}")
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        internet = stack.enter_context(
            modem(pair, arguments.down, arguments.up, arguments.buffer_ms)
        )
        for netns in (
            pair.host_ns,
            internet.netns,
        ):  # per namespace: the machine's own settings are left alone
            sysctl = ["sysctl", "-qw", f"net.ipv4.tcp_tso_rtt_log={TSO_RTT_LOG}"]
            subprocess.run(nsenter_argv(netns, sysctl), check=True)
        helper = bus = None
        if set(cases) & set(HELPER_CASES):  # the others run without the helper
            bus = stack.enter_context(PrivateSystemBus())
            state = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-prio-"))
            helper = stack.enter_context(HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state),
                                                       backend="tc", start_timeout_s=START_TIMEOUT_S))  # fmt: skip
        bench = Bench(bus, pair, internet, arguments.down, arguments.up, arguments.cap_share, arguments.congestion,
                      arguments.flows, arguments.slow_share)  # fmt: skip
        bench.acks = acks
        bench.tag_download = arguments.tag_download
        bench.rt_receivers = arguments.rt_receivers
        print(f"link {arguments.down * 8 / 1e6:.1f} Mbit/s down, {arguments.up * 8 / 1e6:.1f} Mbit/s up, "
              f"{arguments.buffer_ms:.0f} ms of buffer each way, TCP {arguments.congestion}"
              f"{', download receivers real-time' if arguments.rt_receivers else ''}, "
              f"{arguments.flows} flows per bulk app; "
              f"call {arguments.seconds:.0f} s at 50 packets/s each way", flush=True)  # fmt: skip
        results = []
        for name in cases:
            results.append(bench.run(name, arguments.seconds, arguments.warmup_s))
            print(_format(results[-1:], bench).splitlines()[-1], flush=True)
        print()
        print(_format(results, bench))
        print()
        print(_compare(results))
        if helper is not None and helper.returncode is not None:
            raise RuntimeError(f"the helper died:\n{helper.log_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
