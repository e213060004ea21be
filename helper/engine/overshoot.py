"""Limits not met: an application measured above its limit, tick after tick.

A limit the application keeps exceeding is never shown as simply in force
(docs/helper.md): the listing says how far above it was measured. Counted
only where one rule reaches all of the application's processes, so the
measured rate is the rule's. Pure: fed each tick with the live rules and the
measured rates; the engine calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from chadthrottle.contract import ADMIN_OWNER, NOT_MET_PREFIX, Direction
from chadthrottle.helper.engine.gating import Gating
from chadthrottle.helper.engine.plan import LiveRules
from chadthrottle.helper.engine.rates import AppTraffic
from chadthrottle.helper.identity.index import ApplicationIndex

# A limit is reported as not met when the application was measured above
# OVERSHOOT_SHARE of it for OVERSHOOT_TICKS ticks in a row (a limit landing on
# a running transfer settles within about a second; a queue draining or a
# burst refilled after a pause passes within a few).
OVERSHOOT_SHARE, OVERSHOOT_TICKS = 1.15, 5


class OvershootWatch:
    def __init__(self) -> None:
        self._over: dict[tuple[str, Direction], int] = {}  # ticks in a row above the limit

    def watch(
        self,
        live: LiveRules,
        index: ApplicationIndex,
        traffic: Mapping[str, AppTraffic],
        gating: Gating,
    ) -> None:
        """Count, per limited application and direction, the ticks in a row
        its measured rate was above its (rated) limit. A direction whose gate
        is closed is not counted: what passes it (bare TCP acknowledgements,
        listed as its rate) is not held to the rate beneath."""
        over: dict[tuple[str, Direction], int] = {}
        for key, limits in live:
            app, moved = index.application(key[0]), traffic.get(key[0])
            if app is None or moved is None:
                continue
            if not (key[1] == ADMIN_OWNER or app.uids == frozenset({key[1]})):
                continue
            closed = gating.closed(key, limits)  # its acknowledgements alone pass: no rate held
            for direction, limit in gating.rated(key, limits).items():
                if direction in closed:
                    continue
                rate = moved.down_bps if direction is Direction.DOWN else moved.up_bps
                if rate > OVERSHOOT_SHARE * limit.rate_bps:
                    over[(key[0], direction)] = self._over.get((key[0], direction), 0) + 1
        self._over = over

    def not_met(self, traffic: Mapping[str, AppTraffic]) -> dict[tuple[str, Direction], str]:
        """(app id, direction) -> how far above its limit it has been measured
        (a not-met problem, NOT_MET_PREFIX), for those over it OVERSHOOT_TICKS
        in a row."""
        found = {}
        for (app_id, direction), ticks in self._over.items():
            moved = traffic.get(app_id)
            if ticks >= OVERSHOOT_TICKS and moved is not None:
                rate = moved.down_bps if direction is Direction.DOWN else moved.up_bps
                found[(app_id, direction)] = (  # enforced, not met: never "not enforced"
                    f"{NOT_MET_PREFIX}measured {rate / 1e6:.2f} MB/s, above the limit for {ticks} s"
                )
        return found
