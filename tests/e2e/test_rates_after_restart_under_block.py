"""A blocked download's listings after the helper restarts say no rate that
passed before the block was in force again (restart36).

gui36 saw it with the demo (Parcel Updates' download blocked): after a clean
stop and start the row read 186 KB/s for a listing, after a SIGKILL and start
371 then 188 KB/s, then 0 again. Both times the download ran while the helper
was down (a clean stop lifts the block; a killed helper's gates lapse within
3 s), and the start's first tick read the counters, the first reading, before
it wrote the stored block's gate and tagged the sockets (its processes are
known only from that tick's read of /proc): the bytes in between, real ones,
were listed in the next two listings as if they had passed the block in
force. Now the rates of every rule the start restores are measured from a
reading after the tick put them in force, as after a change of rules.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from chadthrottle.blocking_client import BlockingHelperClient
from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import own_names
from tests.support.helper_process import HelperProcess
from tests.support.listings_after_start import rows_after_start
from tests.support.netns import NetnsPair, Receiver, app_scope, start_stream

PACED_BPS = 4_000_000  # payload: what passes in the 0.03-0.1 s before the block is in force reads
RATED_ROWS = 3  # listings with a rate to see after each start: the two a leak showed in, and one
# What passes a closed download gate is bare acknowledgements, and this sink sends nothing for its
# source to acknowledge: a blocked listing reads 0 here (a leak read 120-340 KB/s).
BLOCKED_MAX_BPS = 1_000
FLOWS_AGAIN_TIMEOUT_S = 15.0  # the block lapses (a stop: at once; a kill: within 3 s), then TCP's
# retransmission timer, backed off during the block, fires


def _flows_again(receiver: Receiver, since: float) -> None:
    """Wait until the sink counts bytes again after `since` (the helper down,
    its block not in force), as the demo's download ran while it was."""
    deadline = time.monotonic() + FLOWS_AGAIN_TIMEOUT_S
    while receiver.counted_more_at(since) is None:
        assert time.monotonic() < deadline, "the download did not flow with the helper down"
        time.sleep(0.05)
    time.sleep(0.5)  # flowing for a while, not its first retransmission alone


def _quiet_within(receiver: Receiver, timeout_s: float = 5.0) -> bool:
    """A whole second with no bytes arriving, within timeout_s: the block in
    force (what was in flight when it landed may arrive in the first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if receiver.quiet_for(1.0, arrived=True):
            return True
    return False


def test_a_blocked_download_lists_no_rate_from_before_its_block_is_in_force_again(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    desktop_id = own_names.desktop_id("BlockRestart", fresh=True)
    app_name = desktop_id.removesuffix(".desktop")
    helpers: list[HelperProcess] = []
    seen: dict[str, list[ApplicationInfo]] = {}
    gaps: dict[str, float] = {}
    with app_scope(cgroup2_mount(), desktop_id) as scope:
        stream = start_stream(pair, 5847, "down", app_cgroup=scope, seconds=300, rate_bps=PACED_BPS)
        try:
            helpers.append(HelperProcess(private_bus.address, netns=pair.host_ns,
                                         state_dir=tmp_path / "state"))  # fmt: skip
            helpers[-1].start()
            app_id = rows_after_start(private_bus.address, app_name, RATED_ROWS)[-1].id
            with BlockingHelperClient(private_bus.address) as client:
                client.set_blocked(app_id, Direction.DOWN, True)
            assert _quiet_within(stream.receiver), "the block let bytes through"
            for start in ("after a clean stop", "after SIGKILL"):
                down_at = time.monotonic()
                (helpers[-1].stop if start == "after a clean stop" else helpers[-1].kill)()
                _flows_again(stream.receiver, down_at)
                helpers.append(HelperProcess(private_bus.address, netns=pair.host_ns,
                                             state_dir=tmp_path / "state"))  # fmt: skip
                helpers[-1].start()
                seen[start] = rows_after_start(private_bus.address, app_name, RATED_ROWS)
                assert _quiet_within(stream.receiver), f"{start}: not blocked again"
                assert helpers[-1].pid is not None
                gaps[start] = _last_arrival(stream.receiver) - _started_at(helpers[-1].pid)
        finally:
            stream.stop()
            for helper in reversed(helpers):
                helper.close()
    for start, rows in seen.items():
        print(start, f"last byte {gaps[start]:.2f} s after the helper's exec;",
              [f"{r.down_bps:.0f} B/s blocked={r.down_blocked} m={r.down_measuring}" for r in rows])  # fmt: skip
    assert all(row.down_blocked for rows in seen.values() for row in rows), seen
    leaked = {
        start: [f"{row.down_bps:.0f} B/s" for row in rows if row.down_bps > BLOCKED_MAX_BPS]
        for start, rows in seen.items()
    }
    assert not any(leaked.values()), f"a blocked row listed bytes from before its block: {leaked}"


def _started_at(pid: int) -> float:
    """When the process started, on CLOCK_MONOTONIC (its /proc start is on
    CLOCK_BOOTTIME, in clock ticks)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot_now = time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic() - (boot_now - ticks / os.sysconf("SC_CLK_TCK"))


def _last_arrival(receiver: Receiver) -> float:
    """When the sink last counted more bytes (its clock: CLOCK_MONOTONIC)."""
    total = receiver.counted_at(time.monotonic(), arrived=True)
    with receiver._lock:
        timed = receiver.arrived_samples or receiver.sink_samples
        return next(at for at, count in timed if count >= total)
