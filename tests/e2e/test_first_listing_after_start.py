"""The first listings after the helper starts, and after it is stopped or
killed and started again, say no rate they did not measure (spike34).

A paced download runs through all three starts. Before: the start's first
tick listed every application at 0 B/s and not measuring (no earlier reading
to take a rate from), and the window drew that 0 as a one-poll drop to
nothing in the "All applications" sparkline and the rows' (gui34, under Xvfb,
after the helper came back). Now such a row is listed measuring, and every
row with a rate has about the paced one.

The application's first listing after a start is measuring whether or not
anything of it was counted by the start's first read (first36): its sockets
were adopted a moment before, and a paced download that happened to send
nothing in that moment was listed at 0 B/s, not measuring (2 of 4 runs
beside two busy loops, and in 3 of 4 of the lead's at load 7-10). An
application whose connection is quiet throughout tells a real silence from
an unmeasured one: measuring at the first listing, 0 B/s after.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import own_names
from tests.support.helper_process import HelperProcess
from tests.support.listings_after_start import rows_after_start
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    app_scope,
    nsenter_argv,
    spawn,
    start_stream,
    wait_for_line,
)

PACED_BPS = 2_000_000  # payload; the helper counts L3 (+3.6 % at MTU 1500)
RATED_ROWS = 3  # listings with a rate to see after each start
STARTS = ("first start", "after a clean stop", "after SIGKILL")
# Connects, says so, then holds the connection without sending a byte.
QUIET_CLIENT = ("import json, socket, sys, time; s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); "
                "print(json.dumps({'connected': True}), flush=True); time.sleep(120)")  # fmt: skip


def _untrue(rows: list[ApplicationInfo]) -> list[str]:
    """Rows whose download rate is not what was paced, nor said unknown."""
    return [
        f"{row.down_bps / PACED_BPS:.2f}x measuring={row.down_measuring}"
        for row in rows
        if (row.down_measuring and row.down_bps != 0.0)
        or (not row.down_measuring and not 0.7 <= row.down_bps / PACED_BPS <= 1.4)
    ]


def _rows_through_the_starts(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path, app_name: str, rated_rows: int
) -> dict[str, list[ApplicationInfo]]:
    """The application's rows after each of STARTS (a first start, then a
    start after a clean stop, then one after a SIGKILL), until rated_rows of
    them had a download rate; every helper closed after."""
    helpers: list[HelperProcess] = []
    seen: dict[str, list[ApplicationInfo]] = {}
    try:
        for start in STARTS:
            if start == "after a clean stop":
                helpers[-1].stop()
            elif start == "after SIGKILL":
                helpers[-1].kill()
            helpers.append(HelperProcess(private_bus.address, netns=pair.host_ns,
                                         state_dir=tmp_path / "state"))  # fmt: skip
            helpers[-1].start()
            seen[start] = rows_after_start(private_bus.address, app_name, rated_rows)
    finally:
        for helper in reversed(helpers):
            helper.close()
    return seen


def test_no_rate_unmeasured_after_a_start_a_clean_restart_and_a_sigkill_restart(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    desktop_id = own_names.desktop_id("FirstListing")
    app_name = desktop_id.removesuffix(".desktop")
    with app_scope(cgroup2_mount(), desktop_id) as scope:
        stream = start_stream(pair, 5823, "down", app_cgroup=scope, seconds=300, rate_bps=PACED_BPS)
        try:
            seen = _rows_through_the_starts(private_bus, pair, tmp_path, app_name, RATED_ROWS)
        finally:
            stream.stop()
    for start, rows in seen.items():
        print(start, [f"{r.down_bps / PACED_BPS:.2f}x m={r.down_measuring}" for r in rows])
    untrue = {start: _untrue(rows) for start, rows in seen.items() if _untrue(rows)}
    assert not untrue, f"a rate listed that nothing measured: {untrue}"


def _said(rows: list[ApplicationInfo]) -> list[str]:
    return [
        f"{r.down_bps:.0f}/{r.up_bps:.0f} B/s m={r.down_measuring}/{r.up_measuring}" for r in rows
    ]


def test_a_quiet_connection_is_measuring_at_each_starts_first_listing_then_0(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    """Nothing counted at the first read after each start (the connection
    quiet since before it): measuring (before: 0 B/s, not measuring, at
    every start), then 0 B/s over whole ticks."""
    port = 6900 + secrets.randbelow(100)
    server = spawn(nsenter_argv(pair.peer_ns, [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--port", str(port),
                                               "--role", "sink", "--seconds", "120"]), None)  # fmt: skip
    desktop_id = own_names.desktop_id("FirstListingQuiet")
    try:
        wait_for_line(server, "listening")
        with app_scope(cgroup2_mount(), desktop_id) as scope:
            client = spawn(nsenter_argv(pair.host_ns, [sys.executable, "-c", QUIET_CLIENT,
                                                       pair.peer_addr, str(port)]), scope)  # fmt: skip
            wait_for_line(client, "connected")  # killed with its scope
            app_name = desktop_id.removesuffix(".desktop")
            seen = _rows_through_the_starts(private_bus, pair, tmp_path, app_name, 2)
    finally:
        server.kill()
        server.wait()
    for start, rows in seen.items():
        print(start, _said(rows))
    first = {start: _said(rows[:1]) for start, rows in seen.items()
             if not (rows[0].down_measuring and rows[0].up_measuring)}  # fmt: skip
    assert not first, f"a first listing's rate that nothing measured: {first}"
    moved = {start: _said(rows) for start, rows in seen.items()
             if any(r.rx_bytes or r.tx_bytes or r.down_bps or r.up_bps for r in rows)}  # fmt: skip
    assert not moved, f"the quiet connection moved bytes: {moved}"
