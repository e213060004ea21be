"""What ListApplications shows: running applications with traffic, limited
ones, and for a short while those whose processes all exited (with their
totals, so short-lived programs do not vanish before anyone sees them)."""

from __future__ import annotations

from collections.abc import Mapping

from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.helper.engine.limits import Limit
from chadthrottle.helper.engine.rates import AppTraffic
from chadthrottle.helper.identity.index import Application

EXITED_VISIBLE_S = 60.0


def _fallback_name(app_id: str) -> str:
    return app_id.split(":", 1)[-1].rsplit("/", 1)[-1]


def build_listing(
    running: Mapping[str, Application],
    traffic: Mapping[str, AppTraffic],
    limits: Mapping[str, dict[Direction, Limit]],
    now: float,
) -> list[ApplicationInfo]:
    listing = []
    for app_id in sorted(set(traffic) | set(limits)):
        app = running.get(app_id)
        counters = traffic.get(app_id, AppTraffic())
        app_limits = limits.get(app_id, {})
        if app is None and not app_limits and now - counters.last_active > EXITED_VISIBLE_S:
            continue
        listing.append(
            ApplicationInfo(
                id=app_id,
                name=app.identity.name if app else _fallback_name(app_id),
                icon=app.identity.icon if app else "",
                uids=tuple(sorted(app.uids)) if app else (),
                pids=tuple(sorted(app.processes)) if app else (),
                down_bps=counters.down_bps,
                up_bps=counters.up_bps,
                rx_bytes=counters.rx_bytes,
                tx_bytes=counters.tx_bytes,
                down_limit_bps=app_limits[Direction.DOWN].rate_bps if Direction.DOWN in app_limits else 0,
                up_limit_bps=app_limits[Direction.UP].rate_bps if Direction.UP in app_limits else 0,
                loopback_down_bps=counters.loopback_down_bps,
                loopback_up_bps=counters.loopback_up_bps,
                running=app is not None,
            )
        )
    return listing
