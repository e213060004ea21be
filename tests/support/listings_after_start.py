"""An application's row in each listing a helper publishes after its start,
one row a tick, for tests that judge what the first listings say."""

from __future__ import annotations

import time

from chadthrottle.blocking_client import BlockingHelperClient
from chadthrottle.contract import ApplicationInfo

LISTINGS_TIMEOUT_S = 30.0


def rows_after_start(bus_address: str, app_name: str, rated_rows: int) -> list[ApplicationInfo]:
    """The application's row in each tick's listing from the helper's first
    (counted_through_ns tells the ticks apart) until rated_rows of them had a
    download rate (not measuring)."""
    rows: list[ApplicationInfo] = []
    deadline = time.monotonic() + LISTINGS_TIMEOUT_S
    with BlockingHelperClient(bus_address) as client:
        while sum(not row.down_measuring for row in rows) < rated_rows:
            assert time.monotonic() < deadline, f"not {rated_rows} rated listings: {rows}"
            row = next((a for a in client.list_applications() if app_name in a.id), None)
            if row is not None and (
                not rows or row.counted_through_ns != rows[-1].counted_through_ns
            ):
                rows.append(row)
            time.sleep(0.1)  # a poll, well inside a tick
    return rows
