"""What ListApplications shows: running applications with traffic, limited
ones, and for a short while those whose processes all exited (with their
totals, so short-lived programs do not vanish before anyone sees them)."""

from __future__ import annotations

from collections.abc import Mapping

from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.helper.engine.limits import Limit
from chadthrottle.helper.engine.rates import AppTraffic
from chadthrottle.helper.identity.applications import AppIdentity
from chadthrottle.helper.identity.index import Application

EXITED_VISIBLE_S = 60.0


def _fallback_name(app_id: str) -> str:
    return app_id.split(":", 1)[-1].rsplit("/", 1)[-1]


def build_listing(
    running: Mapping[str, Application],
    traffic: Mapping[str, AppTraffic],
    limits: Mapping[str, dict[Direction, Limit]],
    now: float,
    known: Mapping[str, AppIdentity] | None = None,
) -> list[ApplicationInfo]:
    """known: the last identity seen of applications that may have exited, so
    they keep their name and icon."""
    known = known or {}
    listing = []
    for app_id in sorted(set(traffic) | set(limits)):
        app = running.get(app_id)
        counters = traffic.get(app_id, AppTraffic())
        app_limits = limits.get(app_id, {})
        if app is None and not app_limits and now - counters.last_active > EXITED_VISIBLE_S:
            continue
        identity = app.identity if app else known.get(app_id)
        listing.append(
            ApplicationInfo(
                id=app_id,
                name=identity.name if identity else _fallback_name(app_id),
                icon=identity.icon if identity else "",
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
