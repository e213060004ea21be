"""The helper's side of link capacity estimation (issue 16): each tick,
read the uplinks and the busy connections (kernel/path_delay.py), update
the estimate (capacity_estimate.py) and hand a changed one to the engine
(Engine.set_estimated_capacity), while the stored setting asks for it
(SetLinkCapacity(..., estimate=true)).

The link tree lives in the helper's own network namespace (NamespaceShapers
.set_link), so that is where it reads: the bytes through the links the
internet goes by, the link tree's (internet_route.py: a VPN's device, not
also the uplink that carries its encrypted copy; every uplink when nothing
routes there), and its TCP connections. A new setting (other starting
values, estimation switched on again) starts the estimate afresh from the
values set; estimation off forgets it. Runs on the engine's tick thread,
off the engine's lock: a sock_diag dump, a link dump and three route
lookups, a millisecond or two for a desktop's sockets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from chadthrottle.contract import Direction, LinkShapingInfo
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.kernel.interfaces import all_links
from chadthrottle.helper.kernel.internet_route import internet_links
from chadthrottle.helper.kernel.one_way import UploadQueueReader
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.path_delay import (
    LinkCounters,
    PathSampler,
    link_counters,
    shaper_wait_s,
)
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE
from chadthrottle.helper.kernel.tc_ownership import UPLOAD_IFB_ALIAS
from pyroute2.iproute import IPRoute

log = logging.getLogger(__name__)
SYS_NET = Path("/sys/class/net")
# between ticks, while a download raise is judged: our queues' waits read this often (glance), so
# that a step past the link is taken back within a few tenths of a second, not at the next tick
# (capacity_estimate.GLANCE_FALLS; bench/capacity_follow.py --glance-s 0.1, est16h)
GLANCE_S = 0.1
MBIT_BYTES = 125_000  # 1 Mbit/s in bytes/s


class EstimatedEngine(Protocol):
    def link_shaping(self) -> LinkShapingInfo: ...
    def set_estimated_capacity(self, direction: Direction, bps: int | None) -> None: ...


def nic_ceiling(ipr: Any, sys_net: Path = SYS_NET) -> int | None:
    """The fastest uplink's speed (bytes/s) as its driver reports it; None
    when none does (veth, Wi-Fi, a namespace whose sysfs is another's)."""
    speeds = []
    for index in link_counters(ipr):
        for link in ipr.get_links(index):
            device = sys_net / str(link.get_attr("IFLA_IFNAME"))
            try:
                if int((device / "ifindex").read_text()) != index:
                    continue  # sysfs of another namespace: not this link
                speed = int((device / "speed").read_text())
            except (OSError, ValueError):
                continue
            if speed > 0:
                speeds.append(speed * MBIT_BYTES)
    return max(speeds) if speeds else None


def upload_ifb(ipr: Any) -> int | None:
    """The link tree's upload IFB in this namespace (tc_shaper.py marks it by its alias);
    None when there is none, or more than one (whose would be a guess)."""
    found = [link.index for link in all_links(ipr)
             if link.kind == "ifb" and link.alias == UPLOAD_IFB_ALIAS]  # fmt: skip
    return found[0] if len(found) == 1 else None


class LinkEstimation:
    """Call tick(engine) once per engine tick, and glance(engine) every GLANCE_S
    between ticks while glancing(), from one thread (its netlink socket is made
    there, on first use: pyroute2 0.9 opens one per thread, in the thread's
    namespace); close() when done.

    one_way: the upload's one-way reading (kernel/one_way.py), read at each tick and
    glance while estimating, stopped otherwise; None: the estimator gets none."""

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, make_ipr: Callable[[], Any] = IPRoute,
        one_way: UploadQueueReader | None = None,
    ) -> None:  # fmt: skip
        self._make_ipr, self._monotonic = make_ipr, monotonic
        self._one_way = one_way
        self._ipr: Any = None
        self._setting: tuple[int, int] | None = (
            None  # the starting values the estimate follows from
        )
        self._estimator: CapacityEstimator | None = None
        self._sampler: PathSampler | None = None
        self._last = 0.0
        self._looked = 0.0  # the last tick or glance
        self._counted: dict[int, LinkCounters] = {}  # the links' counters at the last look

    def glancing(self) -> bool:
        """The estimator asks for glances (CapacityEstimator.wants_glances: a download raise
        judged, or an upload raise judged while the one-way reading comes): glance() every
        GLANCE_S until the next tick."""
        return self._estimator is not None and self._estimator.wants_glances()

    def glance(self, engine: EstimatedEngine) -> None:
        """Between ticks, our queues' waits and the links' bytes since the last look (link
        dumps and the IFBs' qdiscs, no sock_diag dump): a download raise whose bytes leave our
        queue steadily for the modem's is taken back now, unless what passed since it kept up
        with its rate (CapacityEstimator.glance)."""
        started = time.monotonic()  # the engine's lock included (a call may hold it)
        shaping = engine.link_shaping()
        if self._estimator is None or self._ipr is None or not shaping.estimate \
                or (shaping.down_set_bps, shaping.up_set_bps) != self._setting:  # fmt: skip
            return  # the next tick starts afresh
        now = self._monotonic()
        seconds, self._looked = now - self._looked, now
        waits = shaper_wait_s(self._ipr, self._shaping())
        before_links, links = self._counted, self._read_links()
        moved = _moved(before_links, links)
        upload_queue = self._look_one_way()
        before = self._estimator.capacities()
        read = time.monotonic()
        self._hand(
            engine,
            before,
            self._estimator.glance(seconds, None, waits, upload_queue=upload_queue, passed=moved),
        )
        if log.isEnabledFor(logging.DEBUG):
            self._debug("glance", now, seconds, moved, None, waits, (started, read), upload_queue)

    def tick(self, engine: EstimatedEngine) -> None:
        started = time.monotonic()
        shaping = engine.link_shaping()
        if not shaping.estimate:
            self._setting = self._estimator = self._sampler = None
            self._stop_one_way()
            return
        setting = (shaping.down_set_bps, shaping.up_set_bps)
        if self._estimator is None or setting != self._setting:
            self._restart(setting)
            return
        assert self._sampler is not None
        now = self._monotonic()
        upload_queue = self._read_one_way()
        moved, delay, waits = self._sampler.sample()
        seconds, self._last = now - self._last, now
        self._looked = now
        before = self._estimator.capacities()
        sample = Sample(
            seconds, moved, delay, waits, self._sampler.base_rtt_s, upload_queue=upload_queue
        )
        read = time.monotonic()
        self._hand(engine, before, self._estimator.update(sample))
        if log.isEnabledFor(logging.DEBUG):
            self._debug("tick", now, seconds, moved, delay, waits, (started, read), upload_queue)

    def _debug(self, kind: str, at: float, seconds: float, moved: dict[Direction, int] | None,
               delay: float | None, waits: dict[Direction, float], times: tuple[float, float],
               upload_queue: UploadQueueReading | None = None) -> None:  # fmt: skip
        """One line per tick or glance at debug level: its time (monotonic, as a bench's),
        inputs, decisions and the estimate after, and how long the read and the judging with
        the engine's apply took, so a bench can lay the helper's steps beside the modem's
        queues (bench/capacity_follow.py --through helper --trace). times: (started, read), by
        time.monotonic. upload_ms: the upload's one-way reading handed over (ms/ACKs read;
        "-": none)."""
        assert self._estimator is not None and self._sampler is not None
        one_way = "-" if upload_queue is None or upload_queue.queue_ms is None \
            else f"{upload_queue.queue_ms:.2f}/{upload_queue.readings}"  # fmt: skip
        after, (started, read) = self._estimator.capacities(), times
        log.debug(
            "estimation %s at=%.4f s=%r bytes=%s delay_s=%s waits_s=%r/%r base_rtt_s=%s "
            "upload_ms=%s read_ms=%.2f judge_ms=%.2f est=%s/%s | %s",
            kind, at, seconds, "-" if moved is None else f"{moved[Direction.DOWN]}/{moved[Direction.UP]}",
            "-" if delay is None else repr(delay), waits.get(Direction.DOWN, 0.0),
            waits.get(Direction.UP, 0.0),
            "-" if kind != "tick" or self._sampler.base_rtt_s is None else repr(self._sampler.base_rtt_s),
            one_way, (read - started) * 1000, (time.monotonic() - read) * 1000, after[Direction.DOWN],
            after[Direction.UP], "; ".join(self._estimator.decisions),
        )  # fmt: skip

    def _hand(self, engine: EstimatedEngine, before: dict[Direction, int | None],
              after: dict[Direction, int | None]) -> None:  # fmt: skip
        for direction in Direction:
            capacity = after[direction]
            if capacity != before[direction]:
                text = "none" if capacity is None else f"{capacity * 8 / 1e6:.2f} Mbit/s"
                log.info("%s link capacity estimated at %s", direction.value, text)
                engine.set_estimated_capacity(direction, capacity)

    def _read_one_way(self) -> UploadQueueReading | None:
        """The upload's one-way reading since the last look, started on the link tree's
        upload IFB (moved to it if the tree made another); None without one."""
        if self._one_way is None or self._ipr is None:
            return None
        ifb = upload_ifb(self._ipr)
        if ifb is None:
            self._stop_one_way()
            return None
        try:
            self._one_way.start(ifb)
        except OSError as error:
            log.warning("the upload's one-way reading could not start: %s", error)
            return None
        return self._look_one_way()

    def _look_one_way(self) -> UploadQueueReading | None:
        """The reading since the last look; None while not reading (or it failed: no
        information, the estimator's rules without it)."""
        if self._one_way is None:
            return None
        try:
            return self._one_way.look()
        except OSError as error:
            log.warning("reading the upload's one-way queue failed: %s", error)
            return None

    def _stop_one_way(self) -> None:
        if self._one_way is not None:
            try:
                self._one_way.stop()
            except OSError as error:  # the datapath closed first (helper stop): nothing reads
                log.debug("stopping the one-way reading: %s", error)

    def close(self) -> None:
        self._stop_one_way()
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def _restart(self, setting: tuple[int, int]) -> None:
        if self._ipr is None:
            self._ipr = self._make_ipr()
        self._setting = setting
        ceiling = nic_ceiling(self._ipr)
        start = {Direction.DOWN: setting[0] or None, Direction.UP: setting[1] or None}
        self._estimator = CapacityEstimator(start, {direction: ceiling for direction in Direction})
        self._sampler = PathSampler(
            self._read_links, lambda: shaper_wait_s(self._ipr, self._shaping())
        )  # its counters are the last look's too (_read_links notes them)
        self._sampler.sample()
        self._read_one_way()  # started now: the floors begin before the first tick reads
        self._last = self._looked = self._monotonic()

    def _read_links(self) -> dict[int, LinkCounters]:
        """The links the internet goes by (internet_route.py), as the link
        tree's (tc_shaper._link_uplinks); every uplink when nothing routes
        there. Through a VPN its device's bytes, not also the physical
        uplink's (the same bytes encrypted: counted twice, the estimate would
        double): the capacity is then in the VPN's inner bytes, those it shapes."""
        counters = link_counters(self._ipr)
        wanted = internet_links(self._ipr) & set(counters)
        self._counted = (
            {index: counted for index, counted in counters.items() if index in wanted}
            if wanted
            else counters
        )
        return self._counted

    def _shaping(self) -> dict[Direction, float | None]:
        estimator = self._estimator
        if estimator is None:
            return {}
        return {
            d: None if (c := estimator.capacity(d)) is None else c * SHAPE_SHARE for d in Direction
        }


def _moved(before: dict[int, LinkCounters], now: dict[int, LinkCounters]) -> dict[Direction, int]:
    """The bytes per direction between two reads of the links' counters (as PathSampler.sample
    counts them: a link in only one read, or whose counter went back, moved nothing)."""
    moved = {Direction.DOWN: 0, Direction.UP: 0}
    for index, counted in now.items():
        if (old := before.get(index)) is not None:
            moved[Direction.DOWN] += max(0, counted.down - old.down)
            moved[Direction.UP] += max(0, counted.up - old.up)
    return moved
