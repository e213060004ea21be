"""The priority tree (HtbHierarchy with a LinkShaping: helper/kernel/htb.py,
priority_classes.py): the plan, and the tree on a real veth (nesting,
priorities, a limit inside, a class going, a new capacity in place, no trace).

A critical call against bulk through a modem's deep buffer is held through the
real helper: tests/e2e/test_priorities.py (it replaced this module's
port-classified version, bench/priority_model.py, which took 13 s).
"""

from __future__ import annotations

import re
import subprocess

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ACK_MINOR, LINK_MINOR, ClassSpec, HtbHierarchy
from chadthrottle.helper.kernel.priority_classes import (
    ACK_PACE_SHARE,
    FLOOR_SHARES,
    AppClass,
    ClassPlan,
    LinkShaping,
    plan_tree,
)
from chadthrottle.priority import Priority, PriorityError, parse_priority
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, netns_pair, start_stream, tc_dump
from tests.support.requirements import require_root
from tests.support.waiting import eventually


def test_the_plan_orders_priorities_and_keeps_limits_inside_the_link() -> None:
    plans = {p.minor: p for p in plan_tree(1_000_000, {
        3: AppClass(Priority.CRITICAL), 4: AppClass(Priority.LOW, limit_bps=200_000, burst_bytes=65536),
        5: AppClass(limit_bps=500_000),
    })}  # fmt: skip
    link = plans[LINK_MINOR]
    assert link.rate_bps == link.ceil_bps == 950_000
    assert [plans[slot].prio for slot in (3, 5, 4)] == [0, 2, 3]
    assert plans[4].ceil_bps == 200_000 and plans[3].ceil_bps == link.rate_bps
    assert (
        plans[4].cburst_bytes == 65536 and plans[3].burst_bytes <= 2 * 1514
    )  # no more ahead of a higher one
    children = [p for p in plans.values() if p.parent != link.parent]
    # guaranteed floors only, more for higher priorities (a call within its floor is sent at once);
    # the rest is lent by prio
    assert sum(p.rate_bps for p in children) <= link.rate_bps * sum(FLOOR_SHARES.values())
    assert plans[3].rate_bps > max(plans[5].rate_bps, plans[4].rate_bps)
    assert (
        plans[5].rate_bps == plans[0xFFFF].rate_bps
    )  # normal: the application and the default class share its floor
    assert all(isinstance(p, ClassPlan) for p in plans.values())


def test_every_application_gets_a_class_of_its_own_and_classes_take_turns_by_bytes() -> None:
    """One class per application, with a limit or not (at or above the link:
    its ceiling is the link), so applications of one priority share per
    application, not per connection (the engine gives every active one a
    class under a link: plan.fair_shares); the default class holds only what
    no application is known for. Equal quanta of at least a GSO super-packet
    as HTB counts it: its round robin then goes by bytes, not by packets
    (bench/app_fairness.py)."""
    l3_to_l2 = 1514 / 1500
    plans = {p.minor: p for p in plan_tree(1_000_000, {
        3: AppClass(limit_bps=50_000_000), 4: AppClass(limit_bps=950_000), 5: AppClass(),
        6: AppClass(limit_bps=940_000), 7: AppClass(Priority.LOW, limit_bps=50_000_000),
    }, l3_to_l2)}  # fmt: skip
    link = plans[LINK_MINOR]
    assert plans[3].ceil_bps == plans[4].ceil_bps == plans[5].ceil_bps == link.ceil_bps
    assert plans[6].ceil_bps == round(940_000 * l3_to_l2) < link.ceil_bps
    assert plans[7].prio == Priority.LOW.rank and plans[7].ceil_bps == link.ceil_bps
    # the floor of normal is shared by the default class and the four normal applications
    assert {plans[minor].rate_bps for minor in (3, 4, 5, 6, 0xFFFF)} == {
        int(link.rate_bps * FLOOR_SHARES[Priority.NORMAL] / 5)
    }
    (quantum,) = {p.quantum_bytes for p in plans.values() if p.leaf_bytes is not None}
    assert quantum >= 65536 + 44 * 66 + 14  # 64 KB of segments, each with its headers


def test_the_upload_paces_the_downloads_acknowledgements_only_when_told_its_capacity() -> None:
    """A bunch of acknowledgements would make the remote senders burst into the
    modem's queue (docs/benchmarks.md, "Acknowledgements paced"): the ACK class
    is held to ACK_PACE_SHARE of the acknowledged download, in short bursts."""
    down = 6_250_000  # 50 Mbit/s acknowledged over a 10 Mbit/s upload
    paced = {p.minor: p for p in plan_tree(1_250_000, {}, 1.01, acked_bps=down)}[ACK_MINOR]
    assert paced.ceil_bps == round(down * 0.95 * ACK_PACE_SHARE * 1.01)
    assert paced.rate_bps <= paced.ceil_bps and paced.cburst_bytes <= 10 * 66
    # room for an 86-byte IPv6 ACK per two full segments of the whole download: a pace that
    # binds made the modem's queue worse (priority_classes.ACK_PACE_SHARE)
    assert paced.ceil_bps > 1.5 * (down * 0.95 * 1.01 / (2 * 1514)) * 86
    unpaced = {p.minor: p for p in plan_tree(1_250_000, {})}
    assert unpaced[ACK_MINOR].ceil_bps == unpaced[LINK_MINOR].ceil_bps
    # never above the upload link, never (nearly) shut
    assert {p.minor: p for p in plan_tree(10_000, {}, acked_bps=10**9)}[ACK_MINOR].ceil_bps == 9_500
    assert {p.minor: p for p in plan_tree(10**6, {}, acked_bps=1_000)}[ACK_MINOR].ceil_bps > 2000
    assert LinkShaping(1_000, acked_bps=down).plan({}, 1.0) == plan_tree(1_000, {}, acked_bps=down)
    for bad in (0, -1):
        try:
            plan_tree(1_000_000, {}, acked_bps=bad)
        except ValueError as error:
            assert "acknowledged capacity" in str(error)
        else:
            raise AssertionError(f"planned acked_bps={bad}")


def test_bad_priorities_and_plans_are_refused_by_name() -> None:
    assert parse_priority(" High ") is Priority.HIGH
    for text in ("urgent", "", "0"):
        try:
            parse_priority(text)
        except PriorityError as error:
            assert "critical, high, normal, low" in str(error)
        else:
            raise AssertionError(f"{text!r} was taken as a priority")
    for capacity, apps in ((0, {}), (1000, {0: AppClass()}), (1000, {0xFFFC: AppClass()}),
                           (1000, {0xFFFE: AppClass()})):  # fmt: skip
        try:
            plan_tree(capacity, apps)
        except ValueError:
            continue
        raise AssertionError(f"planned {capacity} {apps}")


_BITS = {"bit": 1, "Kbit": 1000, "Mbit": 1000**2, "Gbit": 1000**3}


def _classes(netns: str, device: str) -> dict[str, dict[str, object]]:
    """tc's HTB classes on a device: handle -> root (bool), parent, prio, rate and ceil (bit/s)."""
    shown = subprocess.run(["tc", "-n", netns, "class", "show", "dev", device],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    classes: dict[str, dict[str, object]] = {}
    for line in shown.splitlines():
        words = line.split()
        entry: dict[str, object] = {"root": "root" in words, "parent": None, "prio": 0}
        for key in ("parent", "prio", "rate", "ceil"):
            if key in words:
                value = words[words.index(key) + 1]
                if key == "parent":
                    entry[key] = value
                    continue
                number, unit = re.fullmatch(r"([\d.]+)(\D*)", value).groups()  # type: ignore[union-attr]
                entry[key] = float(number) * _BITS.get(unit, 1)
        classes[words[2]] = entry
    return classes


def _limit_holds_inside(pair: NetnsPair, slot: int, limit_bps: int) -> None:
    """A TCP upload put into the slot's class (by its port) runs at the class's limit (L3, +-10%)."""
    port = 7900 + slot
    subprocess.run(["tc", "-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent", "c7ad:", "protocol", "ip",
                    "prio", "1", "u32", "match", "ip", "dport", str(port), "0xffff", "flowid", f"c7ad:{slot:x}"],
                   check=True)  # fmt: skip
    stream = start_stream(pair, port, "up", seconds=30)
    try:
        assert eventually(
            lambda: stream.receiver.total_bytes() > limit_bps, timeout_s=5
        )  # past the first bucket
        wire = (
            stream.receiver.rate_bps(2.0) * 1500 / 1448
        )  # full segments' payload -> their packets
        assert abs(wire / limit_bps - 1) < 0.1, f"{wire / limit_bps:.3f} of the limit"
    finally:
        stream.stop()
        subprocess.run(["tc", "-n", pair.host_ns, "filter", "del", "dev", pair.host_if, "parent", "c7ad:", "prio", "1"],
                       check=True)  # fmt: skip


def test_a_linked_hierarchy_nests_classes_by_priority_holds_limits_inside_changes_in_place_and_goes_without_a_trace() -> (
    None
):
    require_root()
    l3_to_l2 = 1514 / 1500
    with netns_pair() as pair:
        before = tc_dump(pair.host_ns)
        with entered_netns(pair.host_ns):
            ipr = IPRoute()
        try:
            tree = HtbHierarchy(ipr, ipr.link_lookup(ifname=pair.host_if)[0], Direction.UP, l3_to_l2=l3_to_l2,
                                link=LinkShaping(1_000_000))  # fmt: skip
            tree.create()
            tree.sync(
                {3: ClassSpec(0, 0, Priority.CRITICAL), 4: ClassSpec(200_000, 65536, Priority.LOW)},
                0.0,
            )
            classes = _classes(pair.host_ns, pair.host_if)
            assert set(classes) == {"c7ad:fffe", "c7ad:3", "c7ad:4", "c7ad:fffc", "c7ad:ffff"}
            assert classes["c7ad:fffe"]["root"] is True, classes["c7ad:fffe"]
            assert {h: classes[h].get("parent") for h in ("c7ad:3", "c7ad:4", "c7ad:ffff")} == dict.fromkeys(
                ("c7ad:3", "c7ad:4", "c7ad:ffff"), "c7ad:fffe")  # fmt: skip
            assert [classes[h]["prio"] for h in ("c7ad:3", "c7ad:fffc", "c7ad:ffff", "c7ad:4")] == [
                0,
                1,
                2,
                3,
            ]
            link_rate = classes["c7ad:fffe"]["rate"]
            assert classes["c7ad:4"]["ceil"] < link_rate == classes["c7ad:3"]["ceil"]
            _limit_holds_inside(pair, slot=4, limit_bps=200_000)

            tree.sync(
                {3: ClassSpec(0, 0, Priority.CRITICAL)}, 0.0
            )  # the low one goes, the rest stay
            assert set(_classes(pair.host_ns, pair.host_if)) == {
                "c7ad:fffe",
                "c7ad:3",
                "c7ad:fffc",
                "c7ad:ffff",
            }
            tree.relink(LinkShaping(2_000_000))
            tree.sync({3: ClassSpec(0, 0, Priority.CRITICAL)}, 0.0)
            assert _classes(pair.host_ns, pair.host_if)["c7ad:fffe"]["rate"] > 1.9 * link_rate
            assert not tree.idle  # with a capacity the link is shaped, classes or not
            tree.delete()
        finally:
            ipr.close()
        assert tc_dump(pair.host_ns) == before


def test_application_slots_stay_below_the_minors_and_handles_the_link_tree_takes() -> None:
    from chadthrottle.helper.engine.limits import MAX_SLOTS
    from chadthrottle.helper.kernel.htb import ACK_MINOR, DEFAULT_LEAF_MAJOR, DEFAULT_MINOR

    assert MAX_SLOTS < ACK_MINOR < DEFAULT_LEAF_MAJOR < LINK_MINOR < DEFAULT_MINOR
