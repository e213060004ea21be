"""An application whose upload is limited goes on downloading at full speed:
its download's acknowledgements are upload packets of the same application,
and behind its limited bulk upload (HTB class queue, or the policer's refusals)
they came late, so the download's sender waited on them (a 5.2 MB/s download
fell to 20-650 KB/s under a 100 KB/s upload limit). The limited application's
download is read together with an unlimited bystander's, so the machine's load
slows both alike."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, app_scope, rates_together, start_stream

pytestmark = pytest.mark.parametrize("stack", ["tc", "ebpf"], indirect=True)

UPLOAD_LIMIT_BPS = 100 * 1024
SETTLE_S = 2.0  # the limit lands within a tick, the upload's queue fills
WINDOW_S = 3.0
# Both downloads are paced by their senders, so neither hangs on how much CPU
# the loaded machine leaves it: unlimited, each reads this rate.
DOWNLOAD_BPS = 100e6
# The limited application's download keeps at least this share of the
# unlimited bystander's once its upload is held: 1.00 at load 8-10. Before its
# acknowledgements skipped its upload class and policer it read 0.004-0.005
# (tc: they waited ~1.8 s in the class queue) and 0.69-0.70 (ebpf: the policer
# refused some; unpaced, 0.00-0.27).
KEPT_SHARE = 0.8
# The limited direction is still held (it ran at hundreds of MB/s before the
# limit): within this of the limit over the window. Its exactness is the limit
# tests' to judge; the ebpf policer's burst swings +-17% over 2.5-3 s windows
# (docs/benchmarks.md, "An upload limit and the application's downloads").
HELD_BOUND = 1.25
# The helper's listed upload rate, over its last two ticks, read 0.92-0.99 of
# the limit; 1.76-1.78 with the ebpf backend while it counted the uncharged
# acknowledgements (5.6 beside an unpaced download: 'limit not met').
# The listed download rate beside a fast upload: 1.78 (tc) and 1.91 (ebpf) times the limit
# while it counted the upload's acknowledgements; within HELD_BOUND now.
LISTED_BOUND = 1.4


@dataclass
class Case:
    """One application limited one way (held), moving the other way (free),
    and an unlimited bystander moving the same way as free."""

    limited: Direction
    held: Stream
    free: Stream
    bystander: Stream
    app_id: str = ""


def test_a_limit_leaves_the_same_applications_other_direction_alone(stack: Stack) -> None:
    """Upload limited: its download's acknowledgements skip the upload class and
    policer. Download limited, the mirror image: the upload's acknowledgements
    arrive as packets of the application's download, which went into its limited
    download class (tc) or its download policer (ebpf): under a 100 KB/s download
    limit its upload, paced at 100 MB/s, kept 0.015-0.31 (tc) and 0.74-0.98 (ebpf)
    of an unlimited one's beside it. Either way the listed rate of the limited
    direction is what the limit let through, without the uncharged acknowledgements.
    Both cases at once, two applications read over the same window, each judged
    on its own against its own bystander (one after the other took 5.5 s more)."""
    backend = stack.helper.command[stack.helper.command.index("--backend") + 1]
    with contextlib.ExitStack() as cleanup:
        cases: list[Case] = []
        for limited in Direction:
            port = {Direction.UP: 5700, Direction.DOWN: 5720}[limited] + (
                0 if backend == "tc" else 10
            )
            held_way, free_way = ("up", "down") if limited is Direction.UP else ("down", "up")
            scope = cleanup.enter_context(
                app_scope(stack.cgroup_root, own_names.desktop_id(f"Acks{port}"))
            )
            streams = [start_stream(stack.pair, port, held_way, app_cgroup=scope),
                       start_stream(stack.pair, port + 1, free_way, app_cgroup=scope, rate_bps=DOWNLOAD_BPS),
                       start_stream(stack.pair, port + 2, free_way, rate_bps=DOWNLOAD_BPS)]  # fmt: skip
            for stream in streams:
                cleanup.callback(stream.stop)
            cases.append(Case(limited, *streams))
        time.sleep(0.3)
        for case in cases:
            case.app_id = call_helper(stack.bus_address, lambda c, case=case: c.set_limit(
                f"pid:{case.held.app_pid}", case.limited, UPLOAD_LIMIT_BPS))  # fmt: skip
            cleanup.callback(
                call_helper, stack.bus_address, lambda c, a=case.app_id: c.clear_limit(a)
            )
        time.sleep(SETTLE_S)
        rates = iter(rates_together(
            [s.receiver for case in cases for s in (case.free, case.bystander, case.held)], WINDOW_S))  # fmt: skip
        apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
        for case in cases:
            kept, beside, moved = next(rates), next(rates), next(rates)
            way, free_way = case.limited.value, "down" if case.limited is Direction.UP else "up"
            assert moved < HELD_BOUND * UPLOAD_LIMIT_BPS, (
                f"{way}: the limited direction moved {moved / 1e3:.1f} kB/s"
            )
            # the other direction's acknowledgements are counted, not listed over the limit
            listed = apps[case.app_id].rate_bps(case.limited)
            bound = LISTED_BOUND if case.limited is Direction.UP else HELD_BOUND
            assert listed < bound * UPLOAD_LIMIT_BPS, (
                f"the helper listed {listed / 1e3:.1f} kB/s {way}"
            )
            if case.limited is Direction.DOWN:
                problem = apps[case.app_id].down_limit_problem
                assert "above the limit" not in problem, problem
            assert kept >= KEPT_SHARE * beside, (
                f"the {way}-limited application moved {kept / 1e6:.3f} MB/s "
                f"{free_way} beside an unlimited one's {beside / 1e6:.3f} MB/s"
            )
