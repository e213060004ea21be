"""The devices each application's bytes crossed lately (helper/engine/crossed.py):
where its priority must be in force. Its kernel side is
tests/e2e/test_priority_through_a_vpn.py."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.crossed import DevicesCrossed, ForwardedClassed
from chadthrottle.helper.engine.limits import LinkSetting
from chadthrottle.helper.engine.link_plan import LinkFacts, priority_problem

from tests.support.counter_sample import Sample

OWN, OTHER = 1, 7
VPN, UPLINK, LOOPBACK = 5, 2, 1


def _owner(sample: Sample) -> tuple[str, int | None] | None:
    return {10: ("app:call", 1000), 20: ("app:bulk", 1000)}.get(sample.owner_tgid)


def test_a_device_counts_while_its_bytes_grow_and_is_forgotten_after() -> None:
    crossed = DevicesCrossed(seen_s=5.0)
    crossed.note([Sample(10, 100, 100, VPN), Sample(10, 0, 50, UPLINK)], _owner, OWN, 0.0)
    assert crossed.of("app:call") == {VPN, UPLINK}
    crossed.note([Sample(10, 900, 900, VPN), Sample(10, 0, 50, UPLINK)], _owner, OWN, 4.0)
    assert crossed.of("app:call") == {VPN, UPLINK}  # the uplink's last bytes 4 s ago
    crossed.note([Sample(10, 990, 990, VPN), Sample(10, 0, 50, UPLINK)], _owner, OWN, 6.0)
    assert crossed.of("app:call") == {VPN}  # nothing more on the uplink for 6 s
    crossed.note([], _owner, OWN, 12.0)
    assert crossed.of("app:call") == set()


def test_loopback_other_namespaces_and_unknown_owners_are_left_out() -> None:
    crossed = DevicesCrossed()
    crossed.note(
        [
            Sample(10, 5, 5, LOOPBACK),
            Sample(10, 5, 5, UPLINK, netns_cookie=OTHER),  # a container's: said per namespace
            Sample(30, 5, 5, UPLINK),  # whose, not known
            Sample(20, 5, 5, VPN),
        ],
        _owner,
        OWN,
        0.0,
    )
    assert crossed.of("app:call") == set() and crossed.of("app:bulk") == {VPN}


def test_a_viewer_is_told_of_the_devices_its_own_processes_crossed() -> None:
    """The listing's priority problem is per viewer (as its round trips and
    namespaces): another user's process of the same application, through a
    VPN, must not make a user's own traffic read as not ordered there, nor
    tell them another user's devices. Before, every user's were one set."""
    crossed = DevicesCrossed()
    owners = {10: ("app:call", 1000), 11: ("app:call", 1001)}
    crossed.note(
        [Sample(10, 5, 5, UPLINK), Sample(11, 5, 5, VPN)],
        lambda s: owners.get(s.owner_tgid),
        OWN,
        0.0,
    )
    assert crossed.of("app:call", 1000) == {UPLINK}
    assert crossed.of("app:call", 1001) == {VPN}
    assert crossed.of("app:call") == {UPLINK, VPN}  # an administrator sees everyone's


def test_a_containers_priority_is_said_in_force_only_where_the_kernel_classes_it() -> None:
    """ForwardedClassed and priority_problem: the kernel's per-slot counts of
    classed forwarded packets (bpf/datapath.c) say in which directions an
    application's traffic in another namespace is ordered; a direction whose
    count did not grow within SEEN_S is said not ordered."""
    forwarded = ForwardedClassed(seen_s=5.0)
    facts = LinkFacts(LinkSetting(down_bps=1000, up_bps=1000), {d: 1000 for d in Direction},
                      frozenset(Direction), {d: "tc" for d in Direction})  # fmt: skip
    netns = "net:[4026532970]"
    forwarded.note({3: (0, 0)}, 0.0)
    assert forwarded.of([3]) == frozenset()
    assert priority_problem(facts, netns, forwarded=forwarded.of([3])) == (
        f"its traffic in another network namespace ({netns}) is not prioritized"
    )
    forwarded.note({3: (40, 0), 4: (0, 9)}, 1.0)  # slot 4: another application's
    assert forwarded.of([3]) == {Direction.UP}
    assert priority_problem(facts, netns, forwarded=forwarded.of([3])) == (
        f"its downloads in another network namespace ({netns}) are not prioritized"
    )
    forwarded.note({3: (90, 50)}, 2.0)
    assert forwarded.of(iter([3])) == set(Direction)  # any iterable, once
    assert priority_problem(facts, netns, forwarded=forwarded.of([3])) == ""
    forwarded.note({3: (90, 80)}, 6.5)  # no upload classed for 4.5 s: still in force
    assert forwarded.of([3]) == set(Direction)
    forwarded.note({3: (90, 80)}, 12.0)
    assert forwarded.of([3]) == frozenset()


def test_why_a_containers_upload_is_not_carried_is_said_with_the_upload_only() -> None:
    """A forwarded download is classed by the tuple its upload noted, so a
    device that cannot carry the upload's slot (TcShaper.carrying_gaps) is
    why both are not ordered; a download missing alone has other reasons."""
    why = "veth1: a u32 filter ChadThrottle did not create (prio 1) runs before its own on ingress"
    facts = LinkFacts(LinkSetting(down_bps=1000, up_bps=1000), {d: 1000 for d in Direction},
                      frozenset(Direction), {d: "tc" for d in Direction}, uncarried=why)  # fmt: skip
    netns = "net:[4026532970]"
    assert (
        priority_problem(facts, netns)
        == f"its traffic in another network namespace ({netns}) is not prioritized ({why})"
    )
    assert priority_problem(facts, netns, forwarded={Direction.DOWN}) == (
        f"its uploads in another network namespace ({netns}) are not prioritized ({why})"
    )
    assert priority_problem(facts, netns, forwarded={Direction.UP}) == (
        f"its downloads in another network namespace ({netns}) are not prioritized"
    )
    assert priority_problem(facts) == ""  # an application of the helper's namespace only


def test_counts_a_slot_had_before_its_priority_are_not_taken_for_classing_now() -> None:
    """The kernel's per-slot counts last as long as its maps: a slot whose
    container priority was set before (or whose slot another application
    had) comes back with counts. Its first counts are where it starts from,
    not packets classed now: nothing is said in force until they grow."""
    forwarded = ForwardedClassed(seen_s=5.0)
    forwarded.note({3: (500, 700)}, 0.0)
    assert forwarded.of([3]) == frozenset()
    forwarded.note({3: (500, 700)}, 1.0)
    assert forwarded.of([3]) == frozenset()
    forwarded.note({3: (510, 700)}, 2.0)
    assert forwarded.of([3]) == {Direction.UP}
    forwarded.note({}, 3.0)  # no priority for a while: its counts are forgotten
    forwarded.note({3: (600, 900)}, 4.0)
    assert forwarded.of([3]) == {Direction.UP}  # the upload's growth at 2.0, not the download
