"""The link's catch-all (catch_all.py) on a real veth: ours is removed by
its own handle, so a u32 filter someone else put at exactly its priority
(51118) stays, through the link's coming and going, a killed shaper's
remains adopted or taken away by the next one, and remains whose IFB is
gone; the namespace then ends as it was (no emptied table left on either
hook, but in that last case)."""

from __future__ import annotations

import subprocess

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import catch_all
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, tc_dump
from tests.support.own_names import JOURNAL_INSTANCE
from tests.support.unadopted import remove_own_unadopted

LINK = LinkShaping(capacity_bps=1_250_000)
OURS = "match 00000000/00000000 at 0"  # every catch-all matches everything
# Built like ours in all but its target (lo): the strictest neighbour.
FOREIGN = ["u32", "match", "u32", "0", "0", "classid", "c7ad:ffff", "action", "mirred", "egress", "redirect",
           "dev", "lo"]  # fmt: skip
_FOREIGN_NODE = "fh 800::800 order 2048 key ht 800 bkt 0 *flowid c7ad:ffff"  # theirs came first


def _tc(pair: NetnsPair, *argv: str) -> None:
    subprocess.run(["tc", "-n", pair.host_ns, *argv], check=True)


def _with_foreign_filter(pair: NetnsPair) -> str:
    """Someone's clsact and a u32 of theirs at our catch-all's priority on
    egress; returns the namespace as it is then."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "clsact")
    _tc(pair, "filter", "add", "dev", pair.host_if, "egress", "pref", str(catch_all.CATCH_ALL_PRIORITY),
        "protocol", "all", *FOREIGN)  # fmt: skip
    return tc_dump(pair.host_ns)


def _linked(pair: NetnsPair, datapath: Datapath) -> tuple[IPRoute, TcShaper]:
    """A shaper with a link both ways: a catch-all on each hook of the clsact."""
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    shaper = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
    for direction in Direction:
        shaper.set_link(direction, LINK)
    shaper.reconcile({})
    dump = tc_dump(pair.host_ns)
    # Theirs and our two, each listed under both hooks (they share u32's tables).
    assert dump.count(OURS) == 2 * 3 and "redirect to device lo" in dump.replace(
        "Redirect", "redirect"
    )
    assert all(
        catch_all.present(ipr, hook.uplink_index, hook.parent, hook.ifb.ifindex)
        for hooks in shaper._hooks.values()
        for hook in hooks.values()
    )
    return ipr, shaper


def test_a_foreign_u32_at_the_catch_alls_priority_outlives_the_link(
    pair: NetnsPair, datapath: Datapath
) -> None:
    before = _with_foreign_filter(pair)
    ipr, shaper = _linked(pair, datapath)
    try:
        for direction in Direction:
            shaper.set_link(direction, None)
        shaper.reconcile({})
        assert tc_dump(pair.host_ns) == before
    finally:
        shaper.close()
        ipr.close()
    assert tc_dump(pair.host_ns) == before


def test_a_killed_shapers_catch_alls_go_and_a_foreign_u32_stays(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """The next shaper adopts the remains, or finds them unwanted (with their
    IFBs, or after the IFBs went: then the catch-alls redirect to missing
    devices, i.e. drop every packet, and must go all the same)."""
    before = _with_foreign_filter(pair)
    for successor in ("adopts", "IFBs kept", "IFBs deleted"):
        ipr, killed = _linked(pair, datapath)
        try:
            killed._journal.release()  # what SIGKILL does: objects and journal stay, unlocked
            if successor == "adopts":
                adopting = TcShaper(ipr, datapath.tc_program, datapath, instance=JOURNAL_INSTANCE)
                try:
                    assert adopting.linked_directions() == set(Direction)
                    assert all(
                        hook.catch_all
                        for hooks in adopting._hooks.values()
                        for hook in hooks.values()
                    )
                finally:
                    adopting.close()
            else:
                if successor == "IFBs deleted":
                    for hooks in killed._hooks.values():
                        for hook in hooks.values():
                            ipr.link("del", index=hook.ifb.ifindex)
                assert remove_own_unadopted(ipr) == 2, successor
        finally:
            ipr.close()
        after = tc_dump(pair.host_ns)
        if successor != "IFBs deleted":
            assert after == before, successor
            continue
        # Which hook's table held which catch-all is not known then (clsact's
        # hooks share u32's tables; the mirred actions say "device *"): a hook
        # whose neighbour holds someone's filter may keep its emptied table,
        # which matches nothing (catch_all._drop_emptied). Ours went, theirs stayed.
        assert "Redirect to device lo" in after and _FOREIGN_NODE in after
        assert "device *" not in after and " bpf " not in after and "ctifb" not in after
