"""Two helpers' shapers on one uplink, each limiting a direction: the first
adds the clsact, the second puts its filter on the clsact's other hook. The
clsact goes with the last ChadThrottle filter on it, whichever helper leaves
last; a clsact nobody of ChadThrottle added stays.

Before, the first left the clsact for the second's filter and forgot it, and
the second never removed a clsact it had not added: an empty clsact stayed on
the uplink with no journal naming it. Test helpers in two lanes (or two test
sessions) whose applications live in the root namespace left one so on the
machine's eth0 (clsact34)."""

from __future__ import annotations

import subprocess

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, tc_dump
from tests.support.own_names import JOURNAL_INSTANCE

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)


def _shaper(netns: str, datapath: Datapath, helper: str) -> tuple[IPRoute, TcShaper]:
    """A shaper of one helper (its own journal instance: another state directory)."""
    with entered_netns(netns):
        ipr = IPRoute()
    shaper = TcShaper(ipr, datapath.tc_program, datapath, retire_after_s=0.0, hook_linger_s=0.0,
                      instance=f"{JOURNAL_INSTANCE}-{helper}")  # fmt: skip
    return ipr, shaper


def _clsacts(pair: NetnsPair) -> str:
    shown = subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "show", "dev", pair.host_if],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return "".join(line for line in shown.splitlines(True) if "clsact" in line)


def _both(pair: NetnsPair, datapath: Datapath, first_out: str) -> None:
    """Helper a limits uploads (adds the clsact), b downloads (uses it);
    first_out leaves first. Nothing is left."""
    before = tc_dump(pair.host_ns)
    ipr_a, a = _shaper(pair.host_ns, datapath, "a")
    ipr_b, b = None, None
    try:
        a.reconcile({Direction.UP: {1: LIMIT}})
        ipr_b, b = _shaper(pair.host_ns, datapath, "b")
        b.reconcile({Direction.DOWN: {2: LIMIT}})
        during = tc_dump(pair.host_ns)
        assert "chadt_tc_out" in during and "chadt_tc_in" in during, "each did not shape"
        assert _clsacts(pair).count("clsact") == 1
        shapers = {"a": a, "b": b}
        shapers.pop(first_out).close()
        assert _clsacts(pair), "the clsact went while the other helper's filter was on it"
        shapers.popitem()[1].close()
        a = b = None  # type: ignore[assignment]
        assert _clsacts(pair) == "", "an empty clsact was left on the uplink"
        assert tc_dump(pair.host_ns) == before
    finally:
        for shaper in (a, b):
            if shaper is not None:
                shaper.close()
        ipr_a.close()
        if ipr_b is not None:
            ipr_b.close()


def test_the_clsact_goes_with_the_last_filter_when_the_helper_that_added_it_leaves_first(
    pair: NetnsPair, datapath: Datapath
) -> None:
    _both(pair, datapath, first_out="a")


def test_the_clsact_goes_with_the_last_filter_when_the_other_helper_leaves_first(
    pair: NetnsPair, datapath: Datapath
) -> None:
    _both(pair, datapath, first_out="b")


def test_a_clsact_that_was_there_before_stays(pair: NetnsPair, datapath: Datapath) -> None:
    """Somebody's clsact (no filter on it yet): used, and left as found."""
    subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "add", "dev", pair.host_if, "clsact"],
                   check=True)  # fmt: skip
    before = tc_dump(pair.host_ns)
    ipr, shaper = _shaper(pair.host_ns, datapath, "a")
    try:
        shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {2: LIMIT}})
        assert "chadt_tc_out" in tc_dump(pair.host_ns)
        shaper.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()
