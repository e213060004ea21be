"""What the real helper did beside the modem's queues, for the call's worst echoes
(bench/capacity_follow.py --through helper --trace; issue 16, est16i).

The helper logs each estimation tick and glance at debug level (helper/engine/
estimation.py: its monotonic time, inputs, decisions, the estimate after, how long
the read and the judging took) and each engine tick (factory.py: how late, how
long). One clock serves the helper, the bench and the call (CLOCK_MONOTONIC: no
time namespace here), so the call's echoes, the modem's queues (read here every
MODEM_EVERY_S through netlink in its namespace) and the helper's steps line up.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute

from bench.bottleneck import Internet
from bench.priorities import CALL_RATE, CallResult
from tests.support.netns import entered_netns

MODEM_EVERY_S = 0.05
WORST = 6  # echoes per phase's second half: its p99 is the 5th worst of ~500
BEFORE_S = 2.5  # the helper's steps this long before a worst echo are listed with it
_STEP = re.compile(
    r"estimation (?P<kind>tick|glance) at=(?P<at>[\d.]+) s=(?P<s>[\d.e-]+) bytes=(?P<bytes>\S+) "
    r"delay_s=(?P<delay>\S+) waits_s=(?P<down>[\d.e-]+)/(?P<up>[\d.e-]+) base_rtt_s=(?P<base>\S+) "
    r"(?:upload_ms=(?P<upload>\S+) )?read_ms=(?P<read>[\d.]+) judge_ms=(?P<judge>[\d.]+) est=(?P<est_down>\w+)/(?P<est_up>\w+) "
    r"\| (?P<decisions>.*)$"
)
_ENGINE = re.compile(
    r"engine tick at=(?P<at>[\d.]+) late_ms=(?P<late>-?[\d.]+) took_ms=(?P<took>[\d.]+)"
)


@dataclass(frozen=True)
class Step:
    """One estimation tick or glance of the helper, as it logged it."""

    kind: str
    at: float  # monotonic s
    seconds: float
    bytes: tuple[int, int] | None
    delay_s: float | None
    waits_s: tuple[float, float]  # our download and upload queues' waits
    base_rtt_s: float | None
    read_ms: float
    judge_ms: float
    estimate: tuple[int | None, int | None]
    decisions: str


def _number(text: str) -> int | None:
    return None if text == "None" else int(text)


def parse_steps(log: str) -> tuple[list[Step], list[tuple[float, float, float]]]:
    """The helper's estimation steps and its engine ticks (at, late_ms, took_ms) from its log."""
    steps, engine = [], []
    for line in log.splitlines():
        if (m := _STEP.search(line)) is not None:
            moved = None if m["bytes"] == "-" else tuple(int(n) for n in m["bytes"].split("/"))
            steps.append(Step(m["kind"], float(m["at"]), float(m["s"]),
                              moved if moved is None else (moved[0], moved[1]),
                              None if m["delay"] == "-" else float(m["delay"]),
                              (float(m["down"]), float(m["up"])),
                              None if m["base"] == "-" else float(m["base"]),
                              float(m["read"]), float(m["judge"]),
                              (_number(m["est_down"]), _number(m["est_up"])), m["decisions"]))  # fmt: skip
        elif (e := _ENGINE.search(line)) is not None:
            engine.append((float(e["at"]), float(e["late"]), float(e["took"])))
    return steps, engine


class SamplingThread:
    """A reading loop (_run, until _stop is set) on a thread of its own while
    running() is entered; _began is when it was entered."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.monotonic()

    def _run(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._began = time.monotonic()
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()


class ModemWatch(SamplingThread):
    """The modem's queues (bytes) every MODEM_EVERY_S, through one netlink socket in its namespace."""

    def __init__(self, internet: Internet) -> None:
        super().__init__()
        self.internet = internet
        self.readings: list[tuple[float, int, int]] = []  # (monotonic s, down, up backlog bytes)

    def _run(self) -> None:
        with entered_netns(self.internet.modem_ns):
            ipr = IPRoute()
        try:
            indexes = [
                ipr.link_lookup(ifname=d)[0] for d in (self.internet.down_dev, self.internet.up_dev)
            ]
            while not self._stop.wait(MODEM_EVERY_S):
                backlog = []
                for index in indexes:
                    root = next(q for q in ipr.get_qdiscs(index=index) if q["parent"] == 0xFFFFFFFF)
                    backlog.append(
                        root.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")["backlog"]
                    )
                self.readings.append((time.monotonic(), backlog[0], backlog[1]))
        finally:
            ipr.close()


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return (f"median {statistics.median(ordered):.1f}, p90 {ordered[int(0.9 * (len(ordered) - 1))]:.1f}, "
            f"max {ordered[-1]:.1f} (n {len(ordered)})")  # fmt: skip


def timings(steps: list[Step], engine: list[tuple[float, float, float]]) -> list[str]:
    """How regular the helper's ticks and glances were, and what they cost its thread."""
    ticks = [s for s in steps if s.kind == "tick"]
    glances = [s for s in steps if s.kind == "glance"]
    gaps = [(b.at - a.at) * 1000 for a, b in itertools.pairwise(steps) if b.kind == "glance"]
    return [
        f"engine ticks: late {_spread([e[1] for e in engine])} ms; took {_spread([e[2] for e in engine])} ms",
        f"estimation ticks: apart {_spread([(b.at - a.at) * 1000 for a, b in itertools.pairwise(ticks)])} ms; "
        f"read {_spread([s.read_ms for s in ticks])} ms; judge {_spread([s.judge_ms for s in ticks])} ms",
        f"glances: after the last step {_spread(gaps)} ms; read {_spread([s.read_ms for s in glances])} ms; "
        f"judge {_spread([s.judge_ms for s in glances])} ms",
        f"base_rtt_s at ticks: {_spread([(s.base_rtt_s or 0) * 1000 for s in ticks if s.base_rtt_s is not None])} ms",
    ]  # fmt: skip


def _modem_ms(
    watch: ModemWatch, begin: float, end: float, rates: tuple[float, float]
) -> tuple[float, float]:
    """The modem's largest queues (ms at its L2 rates) read in [begin, end]."""
    part = [(d, u) for at, d, u in watch.readings if begin <= at <= end]
    if not part:
        return 0.0, 0.0
    return max(d for d, _ in part) / rates[0] * 1000, max(u for _, u in part) / rates[1] * 1000


def worst_echoes(call: CallResult, first: int, last: int, steps: list[Step], watch: ModemWatch,
                 rates: tuple[float, float], began: float) -> list[str]:  # fmt: skip
    """The WORST echoes of packets first..last, each with the modem's queues over its round
    trip and the helper's steps with a decision (or an estimate change) BEFORE_S before it;
    times in s since `began` (the bench's trace's)."""
    if call.started_ns is None:
        return ["(the call reported no start time)"]
    start = call.started_ns / 1e9
    kept = [(r, n, u, d) for r, n, u, d in zip(call.rtts_ms, call.sequences, call.up_ms, call.down_ms, strict=False)
            if first <= n < last]  # fmt: skip
    lines = []
    shown: set[float] = set()
    for rtt, n, up, down in sorted(kept, reverse=True)[:WORST]:
        sent = start + n / CALL_RATE
        modem = _modem_ms(watch, sent - 0.05, sent + rtt / 1000, rates)
        lines.append(f"  echo {n} sent {sent - began:7.2f} s: {rtt:6.1f} ms (out {up:.1f}, back {down:.1f}); "
                     f"the modem's queues over it {modem[0]:.1f} / {modem[1]:.1f} ms")  # fmt: skip
        for step in steps:
            if sent - BEFORE_S <= step.at <= sent + rtt / 1000 and (
                step.decisions or step.kind == "tick"
            ):
                mark = "  (above)" if step.at in shown else ""
                shown.add(step.at)
                lines.append("      " + describe(step, began, watch, rates) + mark)
    return lines


def describe(step: Step, began: float, watch: ModemWatch, rates: tuple[float, float]) -> str:
    mbit = lambda v: "-" if v is None else f"{v * 8 / 1e6:.2f}"  # noqa: E731
    modem = _modem_ms(watch, step.at - MODEM_EVERY_S, step.at + MODEM_EVERY_S, rates)
    delay = "-" if step.delay_s is None else f"{step.delay_s * 1000:.1f}"
    return (f"{step.at - began:7.2f} {step.kind:6} est {mbit(step.estimate[0])}/{mbit(step.estimate[1])} "
            f"ours {step.waits_s[0] * 1000:.1f}/{step.waits_s[1] * 1000:.1f} ms delay {delay} ms "
            f"modem {modem[0]:.1f}/{modem[1]:.1f} ms read {step.read_ms:.1f} judge {step.judge_ms:.1f} ms"
            f"{' | ' + step.decisions if step.decisions else ''}")  # fmt: skip
