"""A download limit holds while the helper is SIGKILLed and restarted, and while
the uplink goes down and up (issue 20).

Before: the restart removed the killed helper's qdiscs, filter and programs
first and built its own about 1.5 s later, the download meanwhile unlimited
(0.25 s windows at 31-1460x the limit, bench/restart_gap.py); the uplink going
down deleted the IFB under a filter that still redirected to it, and downloads
were lost for about 2.9 s after the link was back. The numbers of a run are in
docs/helper.md.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from chadthrottle.helper.engine.limits import default_burst_bytes
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.standalone import PrivateSystemBus

from bench.restart_gap import (
    TOLERANCE,
    WINDOW_S,
    bounce_uplink,
    limited_download,
    report,
    restart_after_sigkill,
    samples_between,
)
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair, tc_dump
from tests.support.sender_info import SenderSampler
from tests.support.waiting import eventually

MiB = 1024 * 1024
LIMIT_BPS = 4 * MiB  # at 1 MiB/s one 64 KB GRO packet is a quarter of a window's budget
DOWN_S = 1.0
# After the uplink was down the class's bucket has refilled to its burst, which
# it lets through at once, as after any pause: a window may hold that much more.
BURST_SHARE = default_burst_bytes(LIMIT_BPS) / (WINDOW_S * LIMIT_BPS)


def _configuration(pair: NetnsPair) -> str:
    """The namespace's devices, qdiscs, classes and filters, without counters,
    program ids and action indexes (the adopted filter gets the new helper's
    program, swapped in place, with a new mirred action)."""
    dump = re.sub(r"direct_packets_stat \d+", "direct_packets_stat N", tc_dump(pair.host_ns))
    dump = re.sub(r"\bid \d+ name chadt_", "id N name chadt_", dump)
    return re.sub(r"\tindex \d+ ref", "\tindex N ref", dump)


def _journals_of(helpers: list[HelperProcess]) -> list[Path]:
    """The tc journals these helpers wrote that are still there (other test
    sessions' helpers keep theirs while they run)."""
    pids = [helper._process.pid for helper in helpers if helper._process is not None]
    return [path for pid in pids for path in RUN_DIR.glob(f"tc-{pid}-*.journal")]


def test_a_download_limit_holds_across_a_sigkill_restart_and_an_uplink_bounce(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    untouched = _configuration(pair)
    with limited_download(private_bus, pair, tmp_path / "state", LIMIT_BPS, 5660) as (
        stream,
        helpers,
    ):
        limited = _configuration(pair)
        since = time.monotonic()
        helpers.append(restart_after_sigkill(private_bus, pair, tmp_path / "state", helpers[-1]))
        restart = report("SIGKILL + restart", stream.receiver, since, time.monotonic(), LIMIT_BPS)
        print(restart.line())
        assert restart.max_ratio <= TOLERANCE, (
            f"the limit lapsed across the restart: {restart.line()}"
        )
        assert restart.longest_stall_s < 0.5, (
            f"the download stalled across the restart: {restart.line()}"
        )
        assert _configuration(pair) == limited, "the restart re-created or left tc objects"
        assert "adopted download shaping an earlier helper left" in helpers[-1].log_text()

        since = time.monotonic()
        sender = SenderSampler(stream.server.pid)
        sender.start()
        try:
            up_at = bounce_uplink(pair, down_s=DOWN_S)
        finally:
            sender.stop()
        bounce = report("uplink down/up", stream.receiver, since, time.monotonic(), LIMIT_BPS)
        timeouts = sender.timeouts_from(up_at)
        print(f"{bounce.line()}; sender's timeouts after link-up: {timeouts}")
        assert bounce.max_ratio <= TOLERANCE + BURST_SHARE, (
            f"the limit lapsed across the bounce: {bounce.line()}"
        )
        # Lost once the link is back: the sender's first retransmission from
        # then on does not get through, and its timer expires again (two
        # timeouts at least, or never acknowledged). How long the download
        # waits for that retransmission is TCP's and the kernel's (the backed-
        # off timer; both ends' neighbour entries are flushed at link-down):
        # 0.01-0.8 s after link-up here, more beside another lane, so the
        # stall itself is not judged (it was, against 2 s: 2.08 s failed).
        assert timeouts is not None and timeouts <= 1, (
            f"downloads were lost once the link was back: {timeouts} retransmission "
            f"timeouts of the sender from link-up until acknowledged; {bounce.line()}"
        )
        after_up = samples_between(stream.receiver, up_at, time.monotonic())
        assert after_up and after_up[-1][1] > after_up[0][1], (
            f"the download did not resume once the link was back: {bounce.line()}"
        )
        assert _configuration(pair) == limited, "the bounce re-created or left tc objects"
        assert helpers[-1].returncode is None, helpers[-1].log_text()
    assert eventually(lambda: _configuration(pair) == untouched, 5.0)
    assert _journals_of(helpers) == [], (
        "the killed helper's journal was not taken over, or the last one's stayed"
    )
