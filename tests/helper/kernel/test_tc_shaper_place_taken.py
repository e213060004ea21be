"""Two helpers' shapers in one network namespace: a helper of another system
bus (a container's, another test session's) whose rule reaches an
application here puts its filter at ChadThrottle's place on the uplink's
hooks. The other helper's add there was refused with "File exists", which
its SetLimit answered; the place is now reported as taken (the policer holds
the limit there, fail open) and what is there is left alone."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import tc_hooks
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_hooks import PLACE_TAKEN, Hook, NoHookPoint
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, tc_dump, tc_shaper_in

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
WORDS = {Direction.UP: "uploads", Direction.DOWN: "downloads"}


def test_another_helpers_filter_at_our_place_is_reported_and_left_alone(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper
) -> None:
    wanted = {Direction.UP: {1: LIMIT}, Direction.DOWN: {2: LIMIT}}
    shaper.reconcile(wanted)
    first = tc_dump(pair.host_ns)
    with tc_shaper_in(pair.host_ns, datapath) as second:
        second.reconcile(wanted)  # raised KernelError "(17, 'File exists')" before
        assert tc_dump(pair.host_ns) == first, "the second made something, or touched the first's"
        assert second.enforcement_gaps() == {
            direction: [
                f"{pair.host_if}: {PLACE_TAKEN}; {word} through {pair.host_if} are not shaped"
            ]
            for direction, word in WORDS.items()
        }
        assert second.active_directions() == set()
        # Taken between hook_point's look and the add: the same answer.
        for direction, hooks in shaper._hooks.items():
            (theirs,) = hooks.values()
            hook = Hook(
                direction, theirs.uplink_index, theirs.ifb, theirs.parent, created_qdisc=False
            )
            with pytest.raises(NoHookPoint, match="holds ChadThrottle's place"):
                tc_hooks.add_filter(second._ipr, hook, datapath.tc_program(direction, True))
    assert tc_dump(pair.host_ns) == first, "the second's close took something of the first's"
    assert shaper.enforcement_gaps() == {}
