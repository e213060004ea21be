"""The tc shaper on a real veth in a namespace: creates what limits need (an
IFB per direction, a clsact on each uplink with our filters), removes it with
the last limit, and never touches a qdisc it did not create."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.tc_shaper import TcShaper, remove_leftovers, remove_unadopted
from pyroute2 import IPRoute

from tests.support.held_streams import streams_held_to
from tests.support.netns import (
    NetnsPair,
    entered_netns,
    tc_dump,
    tc_shaper_in,
    wait_for_carrier,
)
from tests.support.own_names import JOURNAL_INSTANCE
from tests.support.tun_link import tun_link
from tests.support.unadopted import remove_own_unadopted

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
VETH_L3_TO_L2 = (1500 + 14) / 1500  # HTB counts from the Ethernet header; limits are at L3


def _tc_rate(rate_bps: int) -> str:
    """How tc prints the HTB rate the shaper sets for an L3 limit on the veth."""
    return f"rate {round(rate_bps * VETH_L3_TO_L2) * 8 // 1000}Kbit"


def _classes(pair: NetnsPair, shaper: TcShaper, direction: Direction) -> str:
    """The HTB classes on the namespace's IFB of a direction."""
    (ifb,) = {hook.ifb_name for hook in shaper._hooks[direction].values()}
    shown = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", ifb],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return "".join(line for line in shown.splitlines(True) if line.startswith("class htb "))


def _ifb_aliases(pair: NetnsPair) -> list[str]:
    shown = subprocess.run(["ip", "-n", pair.host_ns, "-d", "link", "show", "type", "ifb"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sorted(re.findall(r"alias (chadthrottle [a-z]+ shaper)", shown))


def _root_of(pair: NetnsPair, ifname: str) -> str:
    """The device's root qdisc, without the counter an HTB root bumps as packets pass."""
    shown = subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "show", "dev", ifname, "root"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return re.sub(r"direct_packets_stat \d+", "direct_packets_stat N", shown)


def test_first_limit_creates_and_last_removes_everything(pair: NetnsPair, shaper: TcShaper) -> None:
    before = tc_dump(pair.host_ns)
    root = _root_of(pair, pair.host_if)
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {2: LIMIT}})
    during = tc_dump(pair.host_ns)
    assert _root_of(pair, pair.host_if) == root, (
        "the uplink's root qdisc is not the shaper's to replace"
    )
    assert "qdisc clsact ffff:" in during and during.count(f"qdisc htb {HTB_MAJOR:x}: root") == 2
    assert "chadt_tc_in" in during and "chadt_tc_out" in during
    assert _ifb_aliases(pair) == ["chadthrottle download shaper", "chadthrottle upload shaper"]
    assert shaper.active_directions() == {Direction.UP, Direction.DOWN}
    shaper.reconcile({Direction.UP: {1: LIMIT}})
    after_down = tc_dump(pair.host_ns)
    assert _ifb_aliases(pair) == ["chadthrottle upload shaper"] and "chadt_tc_in" not in after_down
    assert "chadt_tc_out" in after_down and "qdisc clsact ffff:" in after_down
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


def test_changing_a_rate_changes_the_class(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.UP: {7: LIMIT}})
    shaper.reconcile({Direction.UP: {7: ClassSpec(4_000_000, 262144)}})
    classes = _classes(pair, shaper, Direction.UP)
    assert _tc_rate(4_000_000) in classes and _tc_rate(1_000_000) not in classes


def test_a_foreign_root_qdisc_is_left_intact_and_uploads_are_shaped_anyway(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Uploads are caught on the clsact egress hook, before the root qdisc:
    somebody's root (a tbf here) stays as it is, and packets the upload IFB
    shaped go through it afterwards."""
    subprocess.run(
        [
            "tc",
            "-n",
            pair.host_ns,
            "qdisc",
            "add",
            "dev",
            pair.host_if,
            "root",
            "handle",
            "1:",
            "tbf",
            "rate",
            "1gbit",
            "burst",
            "1mb",
            "latency",
            "50ms",
        ],
        check=True,
    )
    before = tc_dump(pair.host_ns)
    root = _root_of(pair, pair.host_if)
    shaper.reconcile({Direction.UP: {1: LIMIT}})
    assert _root_of(pair, pair.host_if) == root and "chadt_tc_out" in tc_dump(pair.host_ns)
    assert shaper.active_directions() == {Direction.UP}
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


def test_a_root_qdisc_the_kernel_attached_is_left_as_it_is(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """A multi-queue device gets the kernel's mq root, handle 0, as a device gets
    whatever net.core.default_qdisc names (fq, cake, ...): it stays while
    uploads are limited (before 2026-12-03 an HTB took its place)."""
    subprocess.run(
        ["ip", "-n", pair.host_ns, "tuntap", "add", "dev", "ctmq0", "mode", "tun", "multi_queue"],
        check=True,
    )
    try:
        subprocess.run(["ip", "-n", pair.host_ns, "link", "set", "ctmq0", "up"], check=True)
        before = tc_dump(pair.host_ns)
        assert "qdisc mq 0: root" in before
        shaper.reconcile({Direction.UP: {1: LIMIT}})
        during = subprocess.run(
            ["tc", "-n", pair.host_ns, "qdisc", "show", "dev", "ctmq0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "qdisc mq 0: root" in during and "qdisc clsact ffff:" in during
        shaper.reconcile({})
        assert tc_dump(pair.host_ns) == before
    finally:
        subprocess.run(["ip", "-n", pair.host_ns, "link", "del", "ctmq0"], check=False)


def _abandon(shaper: TcShaper) -> None:
    """What SIGKILL does to a shaper: its objects and journal stay, unlocked."""
    shaper._journal.release()


def _shaper(
    netns: str, datapath: Datapath, instance: str = JOURNAL_INSTANCE
) -> tuple[IPRoute, TcShaper]:
    with entered_netns(netns):
        ipr = IPRoute()
    return ipr, TcShaper(ipr, datapath.tc_program, datapath, instance=instance)


def test_what_a_killed_shaper_left_is_adopted_as_it_is(pair: NetnsPair, datapath: Datapath) -> None:
    """The next shaper keeps the killed one's root, IFB, classes and filter
    where they match: not one object is re-created, so the limits never lapse."""
    before = tc_dump(pair.host_ns)
    wanted = {Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT, 2: LIMIT}}
    ipr, killed = _shaper(pair.host_ns, datapath)
    try:
        killed.reconcile(wanted)
        _abandon(killed)
        limited = tc_dump(pair.host_ns)
        _ipr, adopting = _shaper(pair.host_ns, datapath)
        try:
            adopting.reconcile(wanted)
            assert tc_dump(pair.host_ns) == limited, "the adopting shaper changed what matched"
            adopting.reconcile(
                wanted
            )  # the takeover finishes: the filter's program is swapped in place
            action_index = re.compile(
                r"\tindex \d+ ref"
            )  # the swapped filter's mirred is a new action
            assert action_index.sub("", tc_dump(pair.host_ns)) == action_index.sub("", limited)
            assert adopting.active_directions() == {Direction.UP, Direction.DOWN}
        finally:
            adopting.close()
            _ipr.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def test_an_adopted_class_that_differs_is_changed_and_one_not_wanted_is_held_until_the_takeover(
    pair: NetnsPair, datapath: Datapath
) -> None:
    ipr, killed = _shaper(pair.host_ns, datapath)
    try:
        killed.reconcile({Direction.DOWN: {1: LIMIT, 2: LIMIT}})
        _abandon(killed)
        _ipr, adopting = _shaper(pair.host_ns, datapath)
        try:
            adopting.reconcile({Direction.DOWN: {1: ClassSpec(2_000_000, 131072)}})
            classes = tc_dump(pair.host_ns)
            assert _tc_rate(2_000_000) in classes  # slot 1, changed in place
            assert (
                f"class htb {HTB_MAJOR:x}:2 " in classes and _tc_rate(1_000_000) in classes
            )  # held at its rate
            adopting.reconcile({Direction.DOWN: {1: ClassSpec(2_000_000, 131072)}})
            assert (
                "rate 100Gbit" in tc_dump(pair.host_ns).split(f"class htb {HTB_MAJOR:x}:2 ")[1]
            )  # retiring
        finally:
            adopting.close()
            _ipr.close()
    finally:
        ipr.close()


def test_what_a_killed_shaper_left_and_nobody_adopts_is_removed(
    pair: NetnsPair, datapath: Datapath
) -> None:
    before = tc_dump(pair.host_ns)
    ipr, killed = _shaper(pair.host_ns, datapath)
    try:
        killed.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
        _abandon(killed)
        assert tc_dump(pair.host_ns) != before
        assert remove_own_unadopted(ipr) == 2  # each direction's IFB with its hook
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def test_a_killed_shapers_objects_are_left_to_a_shaper_of_its_own_instance(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """Every helper on the machine shares the journals: another helper (another
    state directory: a test session beside this one) neither removes nor adopts
    what a killed one left; its successor adopts it all, as it is."""
    before = tc_dump(pair.host_ns)
    ipr, killed = _shaper(pair.host_ns, datapath, instance="killed-helper")
    try:
        killed.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
        left = tc_dump(pair.host_ns)
        ifbs = {
            direction: {hook.ifb_name for hook in killed._hooks[direction].values()}
            for direction in Direction
        }
        _abandon(killed)
        assert remove_unadopted(ipr, "another-helper") == 0
        _ipr, another = _shaper(pair.host_ns, datapath, instance="another-helper")
        try:
            assert not any(another._hooks.values()), (
                "another helper adopted a killed helper's objects"
            )
        finally:
            another.close()
            _ipr.close()
        assert tc_dump(pair.host_ns) == left
        _ipr, successor = _shaper(pair.host_ns, datapath, instance="killed-helper")
        try:
            assert {
                d: {hook.ifb_name for hook in successor._hooks[d].values()} for d in Direction
            } == ifbs
        finally:
            successor.close()
            _ipr.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def test_a_crash_between_the_record_and_the_object_leaves_nothing_adopted(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """Entries are written before their objects: an entry whose object never
    came (or was replaced by somebody else's) is dropped, the object left."""
    ipr, killed = _shaper(pair.host_ns, datapath)
    try:
        ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
        killed._journal.root(ifindex, pair.host_if)  # an earlier version's root...
        killed._journal.ifb(
            ifindex, pair.host_if, "ctifbdeadbeef", Direction.UP
        )  # ...and killed before creating them
        _abandon(killed)
        subprocess.run(
            [
                "tc",
                "-n",
                pair.host_ns,
                "qdisc",
                "add",
                "dev",
                pair.host_if,
                "root",
                "handle",
                "c7ad:",
                "htb",
                "default",
                "ffff",
            ],
            check=True,
        )  # somebody else's, in its place
        before = tc_dump(pair.host_ns)
        root = _root_of(pair, pair.host_if)
        _ipr, adopting = _shaper(pair.host_ns, datapath)
        try:
            adopting.reconcile({Direction.UP: {1: LIMIT}})
            assert _root_of(pair, pair.host_if) == root and "ctifbdeadbeef" not in tc_dump(
                pair.host_ns
            )
        finally:
            adopting.close()
            _ipr.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def test_objects_that_only_look_like_ours_are_reported_and_left_alone(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """A user's htb and tbf roots with our handle, and a device named like our
    IFBs: a start, limits each way, clearing them and closing leave them as
    they were (uploads through those devices are shaped on their egress hook,
    before the roots)."""
    tag = pair.host_ns[-6:]
    user_htb, user_tbf, user_ifb = f"cth{tag}u1", f"cth{tag}u2", "ctifb2"
    netns = ["ip", "-n", pair.host_ns]
    subprocess.run(
        [*netns, "link", "add", user_htb, "type", "veth", "peer", "name", user_tbf], check=True
    )
    subprocess.run([*netns, "link", "add", user_ifb, "type", "ifb"], check=True)
    for name in (user_htb, user_tbf, user_ifb):
        subprocess.run([*netns, "link", "set", name, "up"], check=True)
    # the veth's operational state turns UP when the kernel's link watch runs
    # (a work item, later under load): in "before" as the user's devices run
    for name in (user_htb, user_tbf):
        wait_for_carrier(pair.host_ns, name)
    tc = ["tc", "-n", pair.host_ns, "qdisc", "add", "dev"]
    subprocess.run([*tc, user_htb, "root", "handle", "c7ad:", "htb", "default", "ffff"], check=True)
    subprocess.run(["tc", "-n", pair.host_ns, "class", "add", "dev", user_htb, "parent", "c7ad:", "classid", "c7ad:1",
                    "htb", "rate", "1mbit"], check=True)  # fmt: skip
    subprocess.run([*tc, user_tbf, "root", "handle", "c7ad:", "tbf", "rate", "1gbit", "burst", "1mb", "latency",
                    "50ms"], check=True)  # fmt: skip
    before = _configuration(pair.host_ns)
    ipr, shaper = _shaper(pair.host_ns, datapath)
    try:
        assert remove_leftovers(ipr) == 3
        assert _configuration(pair.host_ns) == before
        shaper.reconcile({Direction.DOWN: {1: LIMIT}})
        assert "chadt_tc_in" in tc_dump(pair.host_ns)
        roots = [_root_of(pair, name) for name in (user_htb, user_tbf)]
        shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
        assert [_root_of(pair, name) for name in (user_htb, user_tbf)] == roots
        shaper.reconcile({})
        shaper.close()
        assert _configuration(pair.host_ns) == before
    finally:
        ipr.close()


def _configuration(netns: str) -> str:
    """tc_dump without the counter the kernel bumps as the user's devices send."""
    return re.sub(r"direct_packets_stat \d+", "direct_packets_stat N", tc_dump(netns))


def test_an_uplink_that_goes_down_and_up_keeps_its_objects(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Down, the kernel keeps the qdiscs and filters; so does the shaper, and
    traffic finds them when the link is back (before: the IFB was deleted
    under a filter that still redirected to it, and downloads were lost)."""
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    limited = tc_dump(pair.host_ns)
    subprocess.run(["ip", "-n", pair.host_ns, "link", "set", pair.host_if, "down"], check=True)
    shaper._links = (float("-inf"), [])  # as LINKS_MAX_AGE_S later
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    down = tc_dump(pair.host_ns)
    subprocess.run(["ip", "-n", pair.host_ns, "link", "set", pair.host_if, "up"], check=True)
    shaper._links = (float("-inf"), [])
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert (
        _without_link_state(down)
        == _without_link_state(limited)
        == _without_link_state(tc_dump(pair.host_ns))
    )


def _without_link_state(dump: str) -> str:
    return re.sub(r"<[^>]*>|state \w+|qdisc noop|qdisc htb", "", dump)


def test_objects_of_an_uplink_that_vanished_go(pair: NetnsPair, shaper: TcShaper) -> None:
    extra = f"cth{pair.host_ns[-6:]}x"
    subprocess.run(["ip", "-n", pair.host_ns, "link", "add", extra, "type", "veth", "peer", "name", extra + "p"],
                   check=True)  # fmt: skip
    subprocess.run(["ip", "-n", pair.host_ns, "link", "set", extra, "up"], check=True)
    before = subprocess.run(["ip", "-n", pair.host_ns, "-o", "link", "show", "type", "ifb"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    subprocess.run(["ip", "-n", pair.host_ns, "link", "del", extra], check=True)
    shaper._links = (float("-inf"), [])
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    ifbs = subprocess.run(["ip", "-n", pair.host_ns, "-o", "link", "show", "type", "ifb"],
                          capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    assert len(ifbs) == len(before.splitlines()) + 1, "the vanished uplink's IFB stayed"


def test_removing_one_of_two_classes_keeps_the_other(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.UP: {1: LIMIT, 2: LIMIT}, Direction.DOWN: {1: LIMIT, 2: LIMIT}})
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    for direction in Direction:
        classes = _classes(pair, shaper, direction)
        assert f"{HTB_MAJOR:x}:1 " in classes and f"{HTB_MAJOR:x}:2 " not in classes


def test_a_lifted_limit_drains_before_its_class_goes(pair: NetnsPair, datapath: Datapath) -> None:
    before = tc_dump(pair.host_ns)
    with tc_shaper_in(pair.host_ns, datapath, retire_after_s=0.3) as shaper:
        shaper.reconcile({Direction.UP: {3: LIMIT}})
        shaper.reconcile({})
        classes = _classes(pair, shaper, Direction.UP)
        assert (
            f"class htb {HTB_MAJOR:x}:3 " in classes
            and "rate 100Gbit" in classes.split(f"{HTB_MAJOR:x}:3 ")[1]
        )
        assert shaper.active_directions() == set()
        time.sleep(0.35)
        shaper.reconcile({})
        assert tc_dump(pair.host_ns) == before


def test_a_thousand_applications_get_a_thousand_independent_classes(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    before = tc_dump(pair.host_ns)
    wanted = {
        slot: ClassSpec(rate_bps=100_000 + slot * 1000, burst_bytes=131072)
        for slot in range(1, 1001)
    }
    shaper.reconcile({Direction.UP: wanted, Direction.DOWN: wanted})
    classes = _classes(pair, shaper, Direction.UP).splitlines()
    assert len(classes) == 1001  # and the default class
    assert any(
        f"{HTB_MAJOR:x}:3e8 " in line and _tc_rate(1_100_000) in line for line in classes
    )  # slot 1000
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


def test_traffic_over_a_link_without_ethernet_headers_is_shaped_both_ways(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, tmp_path: Path
) -> None:
    """VPNs (tun, WireGuard) and PPP hand tc packets that begin with the IP
    header: read as Ethernet frames, no download matched and none was limited.
    Uploads are classified before any header (skb->priority) and their IFB's
    HTB counts from the IP header there, as the limit does. A download and an
    upload at once, each its own application (slot) and IFB, over the same
    window, each judged on its own (one after the other took 7 s more)."""
    slots = {Direction.DOWN: 3, Direction.UP: 4}
    with tun_link(pair) as tunneled:
        # the applications listen; the peers connect once they are limited
        ports = {Direction.DOWN: 5590, Direction.UP: 5591}
        held = streams_held_to(tunneled, datapath, shaper, LIMIT, slots, ports,
                               ("chadt_tc_in_l3", "chadt_tc_out"), tmp_path)  # fmt: skip
        with held:
            pass  # each direction read at its limit is the whole check


def test_uplinks_share_one_upload_ifb_that_a_killed_shaper_leaves_for_the_next_to_adopt_or_remove(
    pair: NetnsPair, datapath: Datapath
) -> None:
    """Every uplink's egress filter redirects to the namespace's one upload
    IFB, so one class holds an application's uploads over all of them. What a
    killed shaper made is adopted as it is by the next one and, once that is
    killed too, removed by the cleanup, down to the last clsact."""
    extra = f"cth{pair.host_ns[-6:]}y"
    netns = ["ip", "-n", pair.host_ns]
    subprocess.run(
        [*netns, "link", "add", extra, "type", "veth", "peer", "name", extra + "p"], check=True
    )
    try:
        for name in (extra, extra + "p"):
            subprocess.run([*netns, "link", "set", name, "up"], check=True)
        before = tc_dump(pair.host_ns)
        ipr, killed = _shaper(pair.host_ns, datapath)
        try:
            wanted = {Direction.UP: {1: LIMIT}}
            killed.reconcile(wanted)
            hooks = killed._hooks[Direction.UP]
            (ifb,) = {hook.ifb_name for hook in hooks.values()}
            assert len(hooks) == 3  # host_if, extra and its peer: every uplink that is up
            for uplink in (pair.host_if, extra):
                egress = subprocess.run(["tc", "-n", pair.host_ns, "filter", "show", "dev", uplink, "egress"],
                                        capture_output=True, text=True, check=True).stdout  # fmt: skip
                assert "chadt_tc_out" in egress and f"Redirect to device {ifb}" in egress
            _abandon(killed)
            limited = tc_dump(pair.host_ns)
            _ipr, adopting = _shaper(pair.host_ns, datapath)
            try:
                adopting.reconcile(wanted)
                assert tc_dump(pair.host_ns) == limited, "the adopting shaper changed what matched"
                assert set(adopting._hooks[Direction.UP]) == set(hooks)
                _abandon(adopting)
            finally:
                _ipr.close()
            assert remove_own_unadopted(ipr) == 3  # a hook per uplink, the IFB with the last
        finally:
            ipr.close()
        assert tc_dump(pair.host_ns) == before
    finally:
        subprocess.run([*netns, "link", "del", extra], check=False)
