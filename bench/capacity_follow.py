"""Does the estimated link capacity follow the modem when its rate changes?

The modem in miniature of bench/priorities.py (bench/bottleneck.py: tbf at
the link rate with --buffer-ms of queue each way), a bulk upload and a bulk
download of --flows connections each, and a call (critical) through the
helper's kernel layer (TcShaper with a link per direction, as in the
"tagged" case). The capacity is not given: helper/engine/capacity_estimate.py
estimates it each second from the uplink's bytes and the busy TCP
connections' round trips (helper/kernel/path_delay.py), and the shaper is
set to it; with --through helper, the real helper does all of it
(SetLinkCapacity with estimate on, the call critical by SetPriority), and
the bench reads what it holds (GetLinkShaping) each second. The modem's download rate drops to --slow-share for
the second phase and comes back for the third:

    phase 1  --down / --up            from --start (right, wrong: x3, none)
    phase 2  --down x --slow-share
    phase 3  --down again (x --back-share: a link that comes back only partly)

(--vary up: the upload's rate instead.) A --slow-share above 1 makes phase 2 a faster link:
--vary up --slow-share 2.0 doubles the upload's from where its estimate sat, which no try
back to an earlier rate finds (docs/benchmarks.md, "following a changed link within 10 s").

Printed per phase: how long after the change the estimate is first
within -25%..+20% of the new capacity ("follows"; target <= 10 s), the
share of the phase's remaining seconds within it, and the call's
median / p99 round trip and loss over the phase's second half, and the
link used then (what passed the host's veth, as shares of the modem's rate
down / up). A trace per second follows: the estimate (Mbit/s, L3), the
delay signal and our own queues' wait (kernel layer only), the call's
worst way out and back, and the modem's queues (its tbf backlog at its
rate): which direction's queue made a spike, and which probe filled it.

    sudo .venv/bin/python -m bench.capacity_follow [--down 2.5M] [--up 625K] [--buffer-ms 400]
        [--phase-s 20] [--slow-share 0.5] [--back-share 1.0] [--start right|wrong|none]
        [--flows 4] [--bulk both|down] [--vary down|up] [--record FILE] [--tick-s 1.0]
        [--glance-s 0.25] [--watch | --as-helper]

--glance-s samples the round trips and our queues that often between ticks (kernel
layer: CapacityEstimator.glance takes back a raise whose failure shows there; the helper
glances at its queues every 0.1 s while a download raise is judged, estimation.py); with
--watch the glances are recorded, not judged (the ticks decide as the helper's did before
est16h). Printed too: the estimator thread's CPU per tick and per glance, and with
--through helper the helper's CPU over the call.

--through helper --trace (est16i): the helper logs its estimation ticks and glances at debug
level, the modem's queues are read every 0.05 s, and each phase's worst echoes are listed
with what the modem held over them and the helper's steps before them (bench/helper_trace.py);
with --record, the helper's inputs are written as the in-process estimator's are.

--capture PCAP (kernel) tcpdumps the host veth's TCP headers beside the run, lined up with
--record's rows: bench/one_way.py reads each direction's one-way queue from the TCP timestamps
in it (owd28). --one-way-judge (kernel, with --as-helper) gives the estimator that upload
reading at each look, live (bench/one_way_judge.py), as the helper's kernel reader does: the
estimator judges the upload by it (capacity_estimate.py, owd29).

--record writes the estimator's inputs tick by tick (what passed, the delay signal, our
queues' waits) beside the modem's truth, so a run replays through the pure estimator
(tests/helper/engine/test_capacity_estimate.py replays two).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.path_delay import (
    RECEIVER_FLOOR_TICKS,
    PathSampler,
    link_counters,
    sent_beyond_us,
    shaper_queues,
    shaper_wait_s,
)
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE, LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from bench import helper_trace, one_way, one_way_judge
from bench.bottleneck import Internet, modem
from bench.priorities import START_TIMEOUT_S, TSO_RTT_LOG, Bench, CallResult, _rate_arg
from bench.priority_shaper import CACHE_DIR, CALL_SLOT
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    NetnsPair,
    Stream,
    app_scope,
    entered_netns,
    netns_pair,
    nsenter_argv,
    spawn,
)

L2_TO_L3 = 1500 / 1514  # the modem's rate counts frames; a capacity is L3
SPIKE_MS = 50.0  # the seconds with a call round trip above this are listed, to lay beside the trace
IN_BAND = (0.75, 1.20)  # the estimate "follows" within these shares of the true capacity


@dataclass(frozen=True)
class Second:
    at: float  # since the run began
    true_down: int  # L3 bytes/s
    true_up: int
    down: int | None
    up: int | None
    delay_ms: float | None
    passed: tuple[float, float]  # L3 bytes/s through the uplink this second (down, up)
    waits_ms: tuple[float, float]  # in our shaper's queue at the sample (down, up)
    modem_ms: tuple[float, float] = (0.0, 0.0)  # in the modem's queues then (down, up): the truth
    decisions: str = ""  # the estimator's this tick (kernel layer): raises, take-backs, cuts
    # TCP payload the far ends acknowledged this second, all connections through the modem
    # (kernel layer): what its upload let through, a round trip late (issue 16: could it judge
    # an upload's raise as what passed the uplink judges a download's?)
    acked_up: float | None = None
    tick: bool = True  # a tick's row (False: a glance's, which reads no bytes)
    # the upload's bytes past our shaper (path_delay.sent_beyond_us: in flight less our upload
    # queue; None: no dump this row) and our upload queue's drops so far: est25's reading
    beyond_up: int | None = None
    up_drops: int | None = None


def process_cpu_s(pid: int) -> float:
    """A process's user and system CPU so far (s), its threads' included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def modem_ms(internet: Internet | None, true: tuple[int, int]) -> tuple[float, float]:
    """The modem's queues now, in ms at its rates (down, up): what the estimator tries to keep empty."""
    if internet is None:
        return 0.0, 0.0
    down, up = internet.backlog_bytes()
    return down / (true[0] / L2_TO_L3) * 1000, up / (true[1] / L2_TO_L3) * 1000


class Follower(helper_trace.SamplingThread):
    """The estimator driving a TcShaper's link, once a second, in a thread."""

    def __init__(
        self,
        pair: NetnsPair,
        shaper: TcShaper,
        ipr: IPRoute,
        estimator: CapacityEstimator,
        glance_per_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.shaper, self.estimator, self.trace = shaper, estimator, list[Second]()
        self.samples: list[Sample] = []  # the estimator's inputs, for --record
        self.tick_s = 1.0
        self.glance_s = 0.0  # 0: no glances between ticks
        self.kinds: list[str] = []  # per sample: "tick" (update) or "glance"
        self.cpu_s: dict[str, tuple[int, float]] = {}  # per kind: samples, this thread's CPU s
        index = ipr.link_lookup(ifname=pair.host_if)[0]
        self._ipr = ipr
        self._classes = {CALL_SLOT: ClassSpec(0, 0, Priority.CRITICAL)}
        self._read_links = lambda: link_counters(ipr, [index])
        self._sampler = PathSampler(self._read_links, lambda: shaper_wait_s(ipr, self._shaping()),
                                    netns=None, floor_samples=round(RECEIVER_FLOOR_TICKS * glance_per_s))  # fmt: skip
        self.watch = False  # glances recorded (round trips, our queues, bytes) but not judged
        self.as_helper = False  # glances only while a download raise is judged, our queues only
        self._netns, self.host_addr = pair.host_ns, pair.host_addr
        self.true = (0, 0)
        self.internet: Internet | None = None
        # --one-way-judge: read at each look
        self.one_way: one_way_judge.KernelUpload | one_way_judge.LiveUpload | None = None

    def _shaping(self) -> dict[Direction, float | None]:
        return {
            d: None if (c := self.estimator.capacity(d)) is None else c * SHAPE_SHARE
            for d in Direction
        }

    def apply(self) -> None:
        for direction in Direction:
            capacity = self.estimator.capacity(direction)
            self.shaper.set_link(direction, None if capacity is None else LinkShaping(capacity))
        self.shaper.reconcile({direction: dict(self._classes) for direction in Direction})

    def _run(self) -> None:
        """In the host namespace: pyroute2's IPRoute opens a socket per thread,
        in the namespace the thread is in (0.9: the shaper's and the counters'
        reads from this thread would act on the root namespace otherwise)."""
        with entered_netns(self._netns):
            self._follow()

    def _follow(self) -> None:
        """A sample each glance_s (a tick's when tick_s has passed since the last tick:
        update() with the bytes since then; a glance's otherwise: glance())."""
        glance_s = self.glance_s or self.tick_s
        last = tick_at = time.monotonic()
        self._sampler.sample()
        counted = self._read_links()  # at the last row, for a glance's bytes
        while not self._stop.wait(glance_s - (time.monotonic() - last) % glance_s):
            now, cpu = time.monotonic(), time.thread_time()
            paths_before = self._sampler._paths
            before = self.estimator.capacities()
            if now - tick_at >= self.tick_s - glance_s / 2:  # a tick: the bytes since the last
                moved, delay, waits = self._sampler.sample()
                # the base round trip too, as the helper's ticks give it (GLANCE_FALL_S: before
                # est16i the bench's glances judged with none, the helper's with 42 ms)
                self.samples.append(
                    Sample(now - tick_at, moved, delay, waits, self._sampler.base_rtt_s,
                           upload_queue=self._look_one_way())
                )  # fmt: skip
                after = self.estimator.update(self.samples[-1])
                seconds, tick_at, kind = now - tick_at, now, "tick"
            elif self.as_helper and not self.estimator.wants_glances():
                continue  # the helper glances only while a raise is judged that a glance judges
            else:  # a glance: the round trips and our queues (PathSampler.glance)
                if self.as_helper:  # our queues' waits only, as the helper reads them
                    delay, waits = None, dict(self._sampler._read_wait())
                else:
                    delay, waits = self._sampler.glance()
                links = self._read_links()
                moved = {Direction.DOWN: sum(max(0, n.down - o.down) for i, n in links.items() if (o := counted.get(i))),
                         Direction.UP: sum(max(0, n.up - o.up) for i, n in links.items() if (o := counted.get(i)))}  # fmt: skip
                reading = self._look_one_way()
                self.samples.append(Sample(now - last, moved, delay, waits, upload_queue=reading))
                after = before if self.watch else self.estimator.glance(now - last, delay, waits,
                                                                        upload_queue=reading, passed=moved)  # fmt: skip
                seconds, kind = now - last, "glance"
            if kind == "tick":
                links = self._read_links()
            counted = links
            acked = sum(path.acked - old.acked for cookie, path in self._sampler._paths.items()
                        if not path.local and (old := paths_before.get(cookie)) is not None)  # fmt: skip
            beyond, drops = self._beyond(dumped=kind == "tick" or not self.as_helper)
            self.kinds.append(kind)
            count, spent = self.cpu_s.get(kind, (0, 0.0))
            self.cpu_s[kind] = (
                count + 1,
                spent + time.thread_time() - cpu,
            )  # the read and the judging
            if after != before:
                self.apply()
            last = now
            self.trace.append(Second(now - self._began, *self.true, after[Direction.DOWN], after[Direction.UP],
                                     None if delay is None else delay * 1000,
                                     (moved[Direction.DOWN] / seconds, moved[Direction.UP] / seconds),
                                     (waits.get(Direction.DOWN, 0.0) * 1000, waits.get(Direction.UP, 0.0) * 1000),
                                     modem_ms(self.internet, self.true), "; ".join(self.estimator.decisions),
                                     acked / seconds, kind == "tick", beyond, drops))  # fmt: skip

    def _look_one_way(self) -> UploadQueueReading | None:
        """--one-way-judge: the upload's one-way reading since the last look (None: none)."""
        return None if self.one_way is None else self.one_way.take()

    def _beyond(self, dumped: bool) -> tuple[int | None, int | None]:
        """The upload's bytes past our shaper, read from this row's dump and our upload
        queue now (None without a dump), and that queue's drops so far."""
        queue = shaper_queues(self._ipr).get(Direction.UP)
        if queue is None:
            return None, None
        return (
            sent_beyond_us(self._sampler._paths, queue.backlog) if dumped else None
        ), queue.drops


class HelperFollower(helper_trace.SamplingThread):
    """The real helper estimates (SetLinkCapacity(..., estimate=true)); once
    a second this reads what it holds (GetLinkShaping) and the host veth's
    bytes, in a thread (in the host namespace, for the counters)."""

    def __init__(self, pair: NetnsPair, bus: PrivateSystemBus, pid: int | None = None) -> None:
        super().__init__()
        self.trace, self.true, self._bus, self._pair = list[Second](), (0, 0), bus, pair
        self.pid = pid  # the helper's: its CPU over the run is printed
        self.internet: Internet | None = None

    def _run(self) -> None:
        with entered_netns(self._pair.host_ns):
            ipr = IPRoute()
            try:
                index = ipr.link_lookup(ifname=self._pair.host_if)[0]
                before, last = link_counters(ipr, [index])[index], time.monotonic()
                while not self._stop.wait(1.0 - (time.monotonic() - last) % 1.0):
                    now, counted = time.monotonic(), link_counters(ipr, [index])[index]
                    shaping = call_helper(self._bus.address, lambda c: c.get_link_shaping())
                    seconds = now - last
                    self.trace.append(Second(now - self._began, *self.true, shaping.down_capacity_bps or None,
                                             shaping.up_capacity_bps or None, None,
                                             ((counted.down - before.down) / seconds, (counted.up - before.up) / seconds),
                                             (0.0, 0.0), modem_ms(self.internet, self.true)))  # fmt: skip
                    before, last = counted, now
            finally:
                ipr.close()


@contextlib.contextmanager
def through_helper(
    pair: NetnsPair, start: dict[Direction, int], log_level: str = "info"
) -> Iterator[tuple[PrivateSystemBus, Callable[[Path, int], None], HelperProcess]]:
    """The helper in the host namespace, asked to estimate from `start`;
    yields its bus, tag(scope, slot): that scope's application critical, and the helper."""
    with contextlib.ExitStack() as stack:
        bus = stack.enter_context(PrivateSystemBus())
        state = stack.enter_context(tempfile.TemporaryDirectory(prefix="ct-follow-"))
        helper = stack.enter_context(HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), backend="tc",
                                                   log_level=log_level, start_timeout_s=START_TIMEOUT_S))  # fmt: skip
        call_helper(bus.address, lambda c: c.set_link_capacity(start.get(Direction.DOWN, 0),
                                                                start.get(Direction.UP, 0), True))  # fmt: skip
        holders: list[subprocess.Popen[str]] = []

        def tag(scope: Path, _slot: int) -> None:
            holder = spawn(
                nsenter_argv(pair.host_ns, [sys.executable, "-c", "import time; time.sleep(600)"]),
                scope,
            )
            holders.append(holder)
            call_helper(
                bus.address, lambda c: c.set_priority(f"pid:{holder.pid}", Priority.CRITICAL)
            )

        try:
            yield bus, tag, helper
        finally:
            for holder in holders:
                holder.kill()
                holder.wait(timeout=10)
            if helper.returncode is not None:
                print(f"the helper died:\n{helper.log_text()}", file=sys.stderr)


@contextlib.contextmanager
def kernel_shaper(pair: NetnsPair) -> Iterator[tuple[TcShaper, IPRoute, Datapath]]:
    datapath = Datapath(cache_dir=CACHE_DIR)
    datapath.open()
    try:
        with entered_netns(pair.host_ns):
            ipr = IPRoute()
        shaper = TcShaper(ipr, datapath.tc_program, datapath, instance=own_names.JOURNAL_INSTANCE)
        try:
            yield shaper, ipr, datapath
        finally:
            shaper.close()
            ipr.close()
    finally:
        datapath.close()


@contextlib.contextmanager
def bulk(bench: Bench, up_flows: int, down_flows: int) -> Iterator[None]:
    """A bulk upload and a bulk download application (bench/priorities.py's streams), each flows connections."""
    tag = secrets.token_hex(3)
    streams: list[Stream] = []
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"FollowUpload{tag}")) as up_scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"FollowDownload{tag}")) as down_scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"FollowServer{tag}")) as peer_scope:  # fmt: skip
        try:
            for _ in range(up_flows):
                streams.append(bench._bulk_stream("up", up_scope, peer_scope))
            for _ in range(down_flows):
                streams.append(bench._bulk_stream("down", down_scope, peer_scope))
            yield
        finally:
            for stream in streams:
                stream.stop()


def follows_s(
    trace: list[Second], start: float, end: float, up: bool = False
) -> tuple[float | None, float]:
    """(seconds after `start` until the download's (up: the upload's) estimate is first in band,
    share of the phase's seconds in band from then on: probes above it and
    failed probes' cuts below it count against)."""
    phase = [s for s in trace if start < s.at <= end]
    pairs = [(s.up, s.true_up) if up else (s.down, s.true_down) for s in phase]
    inside = [e is not None and IN_BAND[0] * t <= e <= IN_BAND[1] * t for e, t in pairs]
    first = next((i for i, ok in enumerate(inside) if ok), None)
    if first is None:
        return None, 0.0
    return phase[first].at - start, sum(inside[first:]) / len(inside[first:])


def _call_stats(call: CallResult, first: int, last: int) -> str:
    part = call.sent_from(first)
    kept = [(r, n) for r, n in zip(part.rtts_ms, part.sequences, strict=True) if n < last]
    sent = last - first
    rtts = sorted(r for r, _ in kept)
    if not rtts:
        return "no echoes"
    loss = 1 - len(rtts) / sent if sent else 0.0
    at = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))]  # noqa: E731
    return f"{at(0.5):.2f} / {at(0.95):.2f} / {at(0.99):.2f} ms, loss {loss:.2%}"


def _link_used(trace: list[Second], start: float, end: float) -> tuple[float, float]:
    """What passed the host's veth from start to end, as shares of the modem's rates (down, up)."""
    part = [s for s in trace if start < s.at <= end and s.tick]
    if not part:
        return 0.0, 0.0
    down = sum(s.passed[0] / s.true_down for s in part) / len(part)
    return down, sum(s.passed[1] / s.true_up for s in part) / len(part)


def _worst_call_per_second(call: CallResult, began: float) -> dict[int, tuple[float, float]]:
    """Per second of the run (the second ending there, as the trace's rows):
    the call's worst way out and worst way back (ms), to tell which
    direction's queue made a spike."""
    worst: dict[int, tuple[float, float]] = {}
    for n, up_ms, down_ms in zip(call.sequences, call.up_ms, call.down_ms, strict=False):
        second = int(began + n / 50) + 1
        old = worst.get(second, (0.0, 0.0))
        worst[second] = (max(old[0], up_ms), max(old[1], down_ms))
    return worst


def record_helper(path: Path, start: dict[Direction, int], steps: list[helper_trace.Step],
                  trace: list[Second], watch: helper_trace.ModemWatch, began: float,
                  call: CallResult) -> None:  # fmt: skip
    """The helper's inputs step by step (from its debug log) in record()'s format, base_rtt_s
    beside them, the modem's queues read nearest each step (ms at its rates then); and every
    reading of the modem's queues (bytes) and echo of the call (sent at, ms), s since `began`."""
    ticks = []
    for step in steps:
        true = next((s for s in trace if s.at >= step.at - began), trace[-1]) if trace else None
        near = (
            min(watch.readings, key=lambda r: abs(r[0] - step.at)) if watch.readings else (0, 0, 0)
        )
        rates = (true.true_down / L2_TO_L3, true.true_up / L2_TO_L3) if true else (1.0, 1.0)
        ticks.append({"kind": step.kind, "seconds": step.seconds, "at": step.at - began,
                      "bytes": {"down": step.bytes[0], "up": step.bytes[1]} if step.bytes else {"down": 0, "up": 0},
                      "delay_s": step.delay_s, "waits_s": {"down": step.waits_s[0], "up": step.waits_s[1]},
                      "base_rtt_s": step.base_rtt_s, "true": [true.true_down, true.true_up] if true else None,
                      "modem_ms": [near[1] / rates[0] * 1000, near[2] / rates[1] * 1000],
                      "estimate": list(step.estimate), "decisions": step.decisions})  # fmt: skip
    sent = (call.started_ns or 0) / 1e9 - began
    echoes = [[sent + n / 50, r, u, d] for r, n, u, d in zip(call.rtts_ms, call.sequences, call.up_ms, call.down_ms,
                                                            strict=False)]  # fmt: skip
    modem_bytes = [[at - began, down, up] for at, down, up in watch.readings]
    path.write_text(json.dumps({"start": {d.value: v for d, v in start.items()}, "ticks": ticks,
                                "modem_bytes": modem_bytes, "echoes": echoes}))  # fmt: skip


def record(path: Path, start: dict[Direction, int], follower: Follower,
           capture: dict[str, object] | None = None) -> None:  # fmt: skip
    """The estimator's inputs tick by tick (L3 bytes, s), so a run can be replayed
    through the pure estimator; the modem's rates and queues beside them (the truth);
    with --capture, what lines the capture up with the rows (bench/one_way.py)."""
    ticks = [
        {"kind": kind, "at": second.at, "seconds": sample.seconds, "bytes": {d.value: sample.bytes.get(d, 0) for d in Direction},
         "delay_s": sample.delay_s, "waits_s": {d.value: w for d, w in sample.local_wait_s.items()},
         "base_rtt_s": sample.base_rtt_s,
         "true": [second.true_down, second.true_up], "modem_ms": list(second.modem_ms),
         "estimate": [second.down, second.up], "decisions": second.decisions,
         "beyond_up_bytes": second.beyond_up, "up_drops": second.up_drops,
         "upload_queue": None if sample.upload_queue is None
         else [sample.upload_queue.queue_ms, sample.upload_queue.readings]}
        for sample, second, kind in zip(follower.samples, follower.trace, follower.kinds, strict=True)
    ]  # fmt: skip
    lined_up = {} if capture is None else {"capture": capture, "began_mono_s": follower._began,
                                           "host_addr": follower.host_addr}  # fmt: skip
    path.write_text(
        json.dumps({"start": {d.value: v for d, v in start.items()}, "ticks": ticks} | lined_up)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity_follow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--down",
        type=_rate_arg,
        default=_rate_arg("2.5M"),
        help="bytes/s (default 2.5M: 20 Mbit/s)",
    )
    parser.add_argument(
        "--up", type=_rate_arg, default=_rate_arg("625K"), help="bytes/s (default 625K: 5 Mbit/s)"
    )
    parser.add_argument("--buffer-ms", type=float, default=400.0)
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--slow-share", type=float, default=0.5)
    parser.add_argument("--back-share", type=float, default=1.0,
                        help="phase 3's rate as a share of phase 1's (the varied direction)")  # fmt: skip
    parser.add_argument("--vary", choices=("down", "up"), default="down",
                        help="the direction whose rate changes (up: the upload's follow is printed)")  # fmt: skip
    parser.add_argument("--start", choices=("right", "wrong", "none"), default="right")
    parser.add_argument("--flows", type=int, default=4)
    parser.add_argument("--congestion", default="cubic")
    parser.add_argument(
        "--through",
        choices=("kernel", "helper"),
        default="kernel",
        help="kernel: the estimator drives TcShaper here; helper: the real helper estimates "
        "(SetLinkCapacity with estimate, the call critical by SetPriority; no delay column)",
    )
    parser.add_argument(
        "--tick-s", type=float, default=1.0, help="kernel: the estimator's tick (the helper's: 1 s)"
    )
    parser.add_argument(
        "--glance-s",
        type=float,
        default=0.0,
        help="kernel: between ticks, a sample this often judges the raise being judged "
        "(CapacityEstimator.glance); 0: none",
    )
    parser.add_argument(
        "--as-helper",
        action="store_true",
        help="kernel: glance as the helper does (estimation.py): only while a download raise "
        "is judged, our queues' waits only (no round trips)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="kernel: the glances are recorded (--record: the round trips, our queues and the "
        "bytes since the last row) but not judged: the estimator ticks as the helper's",
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="write the estimator's start and inputs, tick by tick, with the modem's "
        "rates and queues, to this JSON file (replayed in tests/helper/engine); helper: with --trace",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="helper: its estimation steps (debug log) and the modem's queues every 0.05 s beside "
        "each phase's worst echoes (bench/helper_trace.py)",
    )
    parser.add_argument(
        "--capture",
        type=Path,
        help="kernel: tcpdump the host veth's TCP headers to this pcap beside the run (with "
        "--record: lined up with its rows; bench/one_way.py reads the one-way queues from it)",
    )
    parser.add_argument(
        "--one-way-judge",
        nargs="?",
        const="kernel",
        choices=("kernel", "capture"),
        help="kernel: the estimator given the upload's one-way reading at each look "
        "(bench/one_way_judge.py): the helper's reader on this datapath (kernel, the default) "
        "or a live capture's (capture: tcpdump)",
    )
    parser.add_argument(
        "--bulk",
        choices=("both", "down"),
        default="both",
        help="bulk traffic both ways (the harder case: a rise cannot be told by direction) or down only",
    )
    arguments = parser.parse_args(argv)
    if not 0 < arguments.back_share <= 4:
        parser.error("--back-share: a share of phase 1's rate, over 0 and at most 4")
    down_l3, up_l3 = int(arguments.down * L2_TO_L3), int(arguments.up * L2_TO_L3)
    start = {"right": {Direction.DOWN: down_l3, Direction.UP: up_l3},
             "wrong": {Direction.DOWN: 3 * down_l3, Direction.UP: 3 * up_l3}, "none": {}}[arguments.start]  # fmt: skip
    slow = (int(arguments.down * arguments.slow_share), arguments.up) if arguments.vary == "down" \
        else (arguments.down, int(arguments.up * arguments.slow_share))  # fmt: skip
    back = (int(arguments.down * arguments.back_share), arguments.up) if arguments.vary == "down" \
        else (arguments.down, int(arguments.up * arguments.back_share))  # fmt: skip
    phases = [(arguments.down, arguments.up), slow, back]
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        internet: Internet = stack.enter_context(
            modem(pair, arguments.down, arguments.up, arguments.buffer_ms)
        )
        for netns in (pair.host_ns, internet.netns):
            subprocess.run(
                nsenter_argv(netns, ["sysctl", "-qw", f"net.ipv4.tcp_tso_rtt_log={TSO_RTT_LOG}"]),
                check=True,
            )
        follower: Follower | HelperFollower
        watch = helper_trace.ModemWatch(internet)
        if arguments.through == "helper":
            bus, tag, helper = stack.enter_context(
                through_helper(pair, start, "debug" if arguments.trace else "info")
            )
            follower = HelperFollower(pair, bus, helper.pid)
            if arguments.trace:
                stack.enter_context(watch.running())
        else:
            shaper, ipr, datapath = stack.enter_context(kernel_shaper(pair))
            # the delay readings a second (a receiver's floor spans RECEIVER_FLOOR_TICKS seconds of
            # them): the glances' too, unless they read our queues only (--as-helper). Divided
            # before est16h: the floor spanned 3 readings (0.3 s) with --glance-s 0.1
            glancing = arguments.glance_s and not arguments.as_helper
            per_s = 1 / (arguments.glance_s if glancing else arguments.tick_s)
            follower = Follower(pair, shaper, ipr, CapacityEstimator(start), per_s)
            if arguments.one_way_judge == "capture":
                follower.one_way = one_way_judge.LiveUpload(
                    pair.host_ns, pair.host_if, pair.host_addr
                )
                stack.callback(follower.one_way.close)
            elif arguments.one_way_judge == "kernel":
                follower.one_way = one_way_judge.KernelUpload(datapath, ipr)
                stack.callback(follower.one_way.close)
            follower.tick_s, follower.glance_s = arguments.tick_s, arguments.glance_s
            follower.watch, follower.as_helper = arguments.watch, arguments.as_helper
            follower.apply()

            def tag(scope: Path, slot: int) -> None:
                datapath.set_cgroup_slot(os.stat(scope).st_ino, slot)

        follower.true, follower.internet = (down_l3, up_l3), internet
        bench = Bench(
            None,
            pair,
            internet,
            arguments.down,
            arguments.up,
            0.8,
            arguments.congestion,
            arguments.flows,
        )
        bench.tag = tag
        total_s = 3 * arguments.phase_s
        calls: list[CallResult] = []
        captured: dict[str, object] | None = None
        if arguments.capture is not None:
            captured = stack.enter_context(
                one_way.capture(pair.host_ns, pair.host_if, arguments.capture)
            )
        with (
            bulk(bench, arguments.flows if arguments.bulk == "both" else 0, arguments.flows),
            follower.running(),
        ):
            changes = [follower._began + (i + 1) * arguments.phase_s for i in range(2)]

            def switch() -> None:
                for at, (down, up) in zip(changes, phases[1:], strict=False):
                    time.sleep(max(0.0, at - time.monotonic()))
                    internet.set_rates(down, up)
                    follower.true = (int(down * L2_TO_L3), int(up * L2_TO_L3))

            switcher = threading.Thread(target=switch, daemon=True)
            switcher.start()
            call_began = time.monotonic() - follower._began
            pid = getattr(follower, "pid", None)
            cpu_before, wall_before = (process_cpu_s(pid) if pid else 0.0), time.monotonic()
            calls.append(bench.call(total_s - call_began))
            switcher.join()
            if pid:
                spent = process_cpu_s(pid) - cpu_before
                print(f"the helper's CPU over the call: {spent:.2f} s in {time.monotonic() - wall_before:.1f} s "
                      f"({spent / (time.monotonic() - wall_before):.1%} of a core)")  # fmt: skip
        steps, engine_ticks = helper_trace.parse_steps(helper.log_text()) \
            if arguments.through == "helper" and arguments.trace else ([], [])  # fmt: skip
    print(f"uptime: {os.popen('uptime').read().strip()}")
    if arguments.record is not None and isinstance(follower, Follower):
        record(arguments.record, start, follower, captured)
    if arguments.record is not None and steps:
        record_helper(
            arguments.record, start, steps, follower.trace, watch, follower._began, calls[0]
        )
    for line in helper_trace.timings(steps, engine_ticks) if steps else []:
        print(line)
    if isinstance(follower, Follower):
        for kind, (count, spent) in follower.cpu_s.items():
            print(f"estimation CPU per {kind} (the read and the judging, its thread): "
                  f"{spent / count * 1000:.2f} ms over {count}")  # fmt: skip
    call = calls[0]
    print(f"call over the whole run (median / p95 / p99): {_call_stats(call, 0, call.sent)}")
    for i, (down, up) in enumerate(phases):
        begin, end = i * arguments.phase_s, (i + 1) * arguments.phase_s
        settled, share = follows_s(follower.trace, begin, end, arguments.vary == "up")
        half = int((begin + arguments.phase_s / 2 - call_began) * 50), int((end - call_began) * 50)
        used = _link_used(follower.trace, begin + arguments.phase_s / 2, end)
        print(f"phase {i + 1}: modem {down * 8 / 1e6:.1f} Mbit/s down, {up * 8 / 1e6:.1f} up; {arguments.vary} estimate follows after "
              f"{'-' if settled is None else f'{settled:.0f} s'}, in band {share:.0%} of the rest; "
              f"call (2nd half) median / p95 / p99 {_call_stats(call, max(0, half[0]), half[1])}; "
              f"link used (2nd half) {used[0]:.2f} / {used[1]:.2f}")  # fmt: skip
        if steps:
            for line in helper_trace.worst_echoes(call, max(0, half[0]), half[1], steps, watch,
                                                  (down, up), follower._began):  # fmt: skip
                print(line)
    spikes = sorted(
        {
            round(call_began + n / 50)
            for r, n in zip(call.rtts_ms, call.sequences, strict=True)
            if r > SPIKE_MS
        }
    )
    print(f"\nseconds with a call round trip above {SPIKE_MS:.0f} ms: {spikes}")
    worst = _worst_call_per_second(call, call_began)
    print(
        "\nt(s)  true down  est down  passed  true up  est up  passed  delay(ms)  ours down/up(ms)"
        "  call max up/down(ms)  modem down/up(ms)  acked up  decisions  [Mbit/s, L3; acked: TCP payload]"
    )
    for s in follower.trace:
        mbit = lambda v: "-" if v is None else f"{v * 8 / 1e6:.2f}"  # noqa: E731
        up_ms, down_ms = worst.get(round(s.at), (0.0, 0.0))
        print(
            f"{s.at:5.1f}  {mbit(s.true_down):>9}  {mbit(s.down):>8}  {mbit(s.passed[0]):>6}  {mbit(s.true_up):>7}  "
            f"{mbit(s.up):>6}  {mbit(s.passed[1]):>6}  "
            f"{'-' if s.delay_ms is None else f'{s.delay_ms:.1f}':>9}  {s.waits_ms[0]:6.1f} / {s.waits_ms[1]:<6.1f}"
            f"  {up_ms:8.1f} / {down_ms:<6.1f}  {s.modem_ms[0]:6.1f} / {s.modem_ms[1]:<6.1f}  {mbit(s.acked_up):>8}  {s.decisions}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
