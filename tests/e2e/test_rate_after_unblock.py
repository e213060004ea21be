"""An unblocked direction is listed as measuring until the helper has a rate
for it; the direction that did not change keeps its rate (API 7).

gui9 on the real helper: unblocking an application's download listed its
download AND its running upload at 0 B/s for a poll, then 1.76 KB/s and
96.6 KB/s, then 1.92 MB/s; another time the first poll listed the rates from
before the change. The helper restarted the whole application's rate window
at a rule change of one direction and listed the old rates until its next
tick, then a rate over the instant between the change and that tick.

Real helper (its kernel gate), real traffic over the veth: a TCP download and
a UDP upload of one application, both paced at their sources (UDP: a TCP
upload's ACKs come in as downloads; the block lets them through and they are
counted there, so a blocked download would never read 0). The
download is blocked, then unblocked most of a tick after a tick;
ListApplications is polled on one connection throughout. Every listing after
the unblock's answer and before the helper's next tick reads the download as
measuring (no rate, 0); then a rate, never measuring again; the upload is
never measuring and never under a quarter of its rate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import TICK_INTERVAL_S, ApplicationInfo, Direction

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.netns import app_scope, start_stream

DOWN_PORT, UP_PORT = 5794, 5795
DOWN_BPS, UP_BPS = 4_000_000, 1_000_000  # paced at their sources
UP_FLOOR = UP_BPS // 4  # a listed upload rate under this reads as stopped
POLL_S = 0.05
# How far into a tick each unblock is aimed: the first late, where a window
# restarted at it would be measured over a moment (gui9's upload read 0 B/s);
# the rest early, leaving most of a tick for its answer and a listing before
# the next tick on a loaded machine.
UNBLOCK_INTO_TICK = (0.8, 0.2, 0.2, 0.2)
WAIT_S = 60.0  # each step, on a loaded machine (TCP's backed-off resend after the block)


@dataclass(frozen=True)
class Listed:
    """What one ListApplications said of the application."""

    rx: int
    tx: int
    down_bps: float
    up_bps: float
    down_measuring: bool
    up_measuring: bool
    down_blocked: bool

    @classmethod
    def of(cls, app: ApplicationInfo) -> Listed:
        return cls(app.rx_bytes, app.tx_bytes, app.down_bps, app.up_bps,
                   app.down_measuring, app.up_measuring, app.down_blocked)  # fmt: skip


class _Poll:
    """ListApplications on one connection, each answer's entry for app_id kept."""

    def __init__(self, client: HelperClient, app_id: str) -> None:
        self.client, self.app_id = client, app_id
        self.seen: list[Listed] = []

    async def until(self, done: Callable[[Listed], bool], what: str) -> None:
        """Poll, keeping every listing, until done(listing) holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while loop.time() < deadline:
            apps = await self.client.list_applications()
            app = next((a for a in apps if a.id == self.app_id), None)
            if app is not None:
                self.seen.append(Listed.of(app))
                if done(self.seen[-1]):
                    return
            await asyncio.sleep(POLL_S)
        raise AssertionError(f"{what}: not seen in {WAIT_S} s; last {self.seen[-6:]}")


@dataclass
class Walk:
    """One block and unblock: the listings from the block to the unblock, the
    last listing before the unblock's call, and the listings after its answer."""

    before: list[Listed]
    last: Listed
    after: list[Listed]

    def untick(self) -> list[Listed]:
        """The listings after the unblock from before the helper's next tick
        (its totals move only at a tick)."""
        return [s for s in self.after if (s.rx, s.tx) == (self.last.rx, self.last.tx)]


async def _walk(poll: _Poll, app_id: str, into_tick: float) -> Walk:
    client = poll.client
    poll.seen.clear()
    await client.set_blocked(app_id, Direction.DOWN, True)
    # a tick measured the blocked download (nothing passed), its upload going on
    await poll.until(
        lambda s: s.down_blocked and not s.down_measuring and s.down_bps == 0, "blocked at 0"
    )
    # a tick was just seen: aim the change into the tick (UNBLOCK_INTO_TICK)
    await asyncio.sleep(into_tick * TICK_INTERVAL_S)
    await poll.until(lambda s: True, "a listing")
    before = list(poll.seen)
    await client.set_blocked(app_id, Direction.DOWN, False)
    poll.seen.clear()
    await poll.until(lambda s: not s.down_measuring and s.down_bps > 0, "the download's rate")
    first = poll.seen[-1]
    await poll.until(lambda s: (s.rx, s.tx) != (first.rx, first.tx), "a tick after it")
    return Walk(before, before[-1], list(poll.seen))


async def _walks(bus: str, app_id: str) -> list[Walk]:
    """Blocks and unblocks until one unblock was listed before the next tick
    (a tick may land between the last listing and the call: then again)."""
    async with HelperClient(bus) as client:
        poll = _Poll(client, app_id)
        await poll.until(
            lambda s: s.down_bps > DOWN_BPS / 4 and s.up_bps > UP_FLOOR, "both running"
        )
        walks: list[Walk] = []
        for into_tick in UNBLOCK_INTO_TICK:
            walks.append(await _walk(poll, app_id, into_tick))
            if walks[-1].untick():
                break
        return walks


def test_an_unblocked_download_is_measuring_then_its_rate_and_the_upload_keeps_its_own(
    stack: Stack,
) -> None:
    app_id = own_names.app_id("TestMeasuring")
    with (
        app_scope(stack.cgroup_root, own_names.desktop_id("TestMeasuring")) as scope,
        app_scope(
            stack.cgroup_root, own_names.desktop_id("TestMeasuringPeer", fresh=True)
        ) as peers,
    ):
        down = start_stream(stack.pair, DOWN_PORT, "down", app_cgroup=scope, peer_cgroup=peers,
                            rate_bps=DOWN_BPS, seconds=180)  # fmt: skip
        # UDP: a TCP upload's ACKs, let through the block, would be counted as its download
        up = start_stream(stack.pair, UP_PORT, "up", udp=True, app_cgroup=scope, peer_cgroup=peers,
                          rate_bps=UP_BPS, seconds=180)  # fmt: skip
        try:
            walks = asyncio.run(_walks(stack.bus_address, app_id))
        finally:
            down.stop()
            up.stop()
            with contextlib.suppress(HelperClientError):
                asyncio.run(_clear(stack.bus_address, app_id))
    for walk in walks:
        print(f"before the unblock: {walk.before[-3:]}\nafter it: {walk.after}")
        # the upload, whose rules never changed, is never restarted: never measuring, never 0
        stopped = [s for s in walk.before + walk.after if s.up_measuring or s.up_bps < UP_FLOOR]
        assert not stopped, (
            f"the running upload was listed measuring or under {UP_FLOOR} B/s: {stopped}"
        )
        # the unblocked download: measuring (its rate 0 says nothing) until a
        # tick lists a rate, then a rate, never measuring again
        untick = walk.untick()
        assert all(s.down_measuring and s.down_bps == 0 and not s.down_blocked for s in untick), (
            f"a listing between the unblock and the next tick was not measuring: {untick}"
        )
        measuring = [s.down_measuring for s in walk.after]
        settled = measuring.index(False)
        assert not any(measuring[settled:]), f"measuring again after a rate: {walk.after}"
        assert all(s.down_bps == 0 for s in walk.after[:settled])
    assert walks[-1].untick(), (
        f"no unblock in {len(walks)} was listed before the helper's next tick"
    )


async def _clear(bus: str, app_id: str) -> None:
    async with HelperClient(bus) as client:
        await client.clear_limit(app_id)
