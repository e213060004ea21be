"""The first listings after the helper starts, and after it is stopped or
killed and started again, say no rate they did not measure (spike34).

A paced download runs through all three starts. Before: the start's first
tick listed every application at 0 B/s and not measuring (no earlier reading
to take a rate from), and the window drew that 0 as a one-poll drop to
nothing in the "All applications" sparkline and the rows' (gui34, under Xvfb,
after the helper came back). Now such a row is listed measuring, and every
row with a rate has about the paced one.
"""

from __future__ import annotations

from pathlib import Path

from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import own_names
from tests.support.helper_process import HelperProcess
from tests.support.listings_after_start import rows_after_start
from tests.support.netns import NetnsPair, app_scope, start_stream

PACED_BPS = 2_000_000  # payload; the helper counts L3 (+3.6 % at MTU 1500)
RATED_ROWS = 3  # listings with a rate to see after each start


def _untrue(rows: list[ApplicationInfo]) -> list[str]:
    """Rows whose download rate is not what was paced, nor said unknown."""
    return [
        f"{row.down_bps / PACED_BPS:.2f}x measuring={row.down_measuring}"
        for row in rows
        if (row.down_measuring and row.down_bps != 0.0)
        or (not row.down_measuring and not 0.7 <= row.down_bps / PACED_BPS <= 1.4)
    ]


def test_no_rate_unmeasured_after_a_start_a_clean_restart_and_a_sigkill_restart(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    desktop_id = own_names.desktop_id("FirstListing")
    app_name = desktop_id.removesuffix(".desktop")
    helpers: list[HelperProcess] = []
    seen: dict[str, list[ApplicationInfo]] = {}
    with app_scope(cgroup2_mount(), desktop_id) as scope:
        stream = start_stream(pair, 5823, "down", app_cgroup=scope, seconds=300, rate_bps=PACED_BPS)
        try:
            for start in ("first start", "after a clean stop", "after SIGKILL"):
                if start == "after a clean stop":
                    helpers[-1].stop()
                elif start == "after SIGKILL":
                    helpers[-1].kill()
                helpers.append(HelperProcess(private_bus.address, netns=pair.host_ns,
                                             state_dir=tmp_path / "state"))  # fmt: skip
                helpers[-1].start()
                seen[start] = rows_after_start(private_bus.address, app_name, RATED_ROWS)
        finally:
            stream.stop()
            for helper in reversed(helpers):
                helper.close()
    for start, rows in seen.items():
        print(start, [f"{r.down_bps / PACED_BPS:.2f}x m={r.down_measuring}" for r in rows])
    untrue = {start: _untrue(rows) for start, rows in seen.items() if _untrue(rows)}
    assert not untrue, f"a rate listed that nothing measured: {untrue}"
