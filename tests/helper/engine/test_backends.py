"""Backend selection: per direction, with the exact reason when one is missing."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.backends import (
    EBPF_CONFIG,
    TC_DOWNLOAD_CONFIG,
    BackendRouter,
    choose_backends,
    describe_backends,
)
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.kernel.htb import Classes, ClassSpec

FULL = {option: "y" for option in {**TC_DOWNLOAD_CONFIG, **EBPF_CONFIG}}
NO_IFB = {k: v for k, v in FULL.items() if k != "CONFIG_IFB"}
NO_HTB = {k: v for k, v in FULL.items() if k != "CONFIG_NET_SCH_HTB"}


def test_auto_prefers_tc_in_both_directions() -> None:
    assert choose_backends("auto", FULL) == {Direction.UP: "tc", Direction.DOWN: "tc"}


def test_auto_falls_back_to_ebpf_per_direction() -> None:
    # Both directions shape through an IFB per namespace (uploads too, since issue 13's uplinks).
    assert choose_backends("auto", NO_IFB) == {Direction.UP: "ebpf", Direction.DOWN: "ebpf"}
    assert choose_backends("auto", NO_HTB) == {Direction.UP: "ebpf", Direction.DOWN: "ebpf"}


def test_explicit_choice_is_honoured_or_refused_with_the_reason() -> None:
    assert choose_backends("ebpf", FULL) == {Direction.UP: "ebpf", Direction.DOWN: "ebpf"}
    with pytest.raises(BackendUnavailable, match=r"IFB device \(CONFIG_IFB\)"):
        choose_backends("tc", NO_IFB)
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        choose_backends("nftables", FULL)


def test_nothing_available_names_both_gaps() -> None:
    with pytest.raises(BackendUnavailable, match=r"tc lacks.*ebpf lacks"):
        choose_backends("auto", {})


def test_description_says_why_and_what_is_active() -> None:
    choice = {Direction.UP: "tc", Direction.DOWN: "ebpf"}
    tc, ebpf = describe_backends(choice, {"tc": {Direction.UP}, "ebpf": set()}, NO_IFB)
    assert (tc.name, tc.available, tc.active_directions) == ("tc", False, ("up",))
    assert "IFB device (CONFIG_IFB)" in tc.reason
    assert (ebpf.name, ebpf.available, ebpf.reason) == ("ebpf", True, "")
    _, ebpf = describe_backends({Direction.UP: "tc", Direction.DOWN: "tc"}, {}, FULL)
    assert ebpf.available and "not selected" in ebpf.reason


class FakeEnforcer:
    def __init__(self, queues: bool = True) -> None:
        self.wanted: dict[Direction, Classes] = {}
        self.closed = False
        self.queues = queues
        self.sent: dict[Direction, dict[int, int]] = {}

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        return dict(self.sent.get(direction, {}))

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        self.wanted = wanted

    def active_directions(self) -> set[Direction]:
        return {d for d, classes in self.wanted.items() if classes}

    def close(self) -> None:
        self.closed = True


def test_router_gives_each_enforcer_only_its_directions() -> None:
    tc, ebpf = FakeEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter({Direction.UP: ("tc", tc), Direction.DOWN: ("ebpf", ebpf)})
    assert router.queues(Direction.UP) and not router.queues(Direction.DOWN)
    spec = ClassSpec(1000, 131072)
    router.reconcile({Direction.UP: {1: spec}, Direction.DOWN: {2: spec}})
    assert tc.wanted == {Direction.UP: {1: spec}} and ebpf.wanted == {Direction.DOWN: {2: spec}}
    assert router.active_directions() == {Direction.UP, Direction.DOWN}
    assert router.active_by_backend() == {"tc": {Direction.UP}, "ebpf": {Direction.DOWN}}
    router.close()
    assert tc.closed and ebpf.closed


def test_the_policer_guards_every_direction_tc_shapes() -> None:
    """HTB holds a limit on its own device only; the policer, in the cgroup
    programs, gets every limit too and holds the sum of all paths."""
    tc, ebpf = FakeEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter(
        {Direction.UP: ("tc", tc), Direction.DOWN: ("tc", tc)}, guard=("ebpf", ebpf)
    )
    up, down = ClassSpec(1000, 131072), ClassSpec(2000, 131072)
    router.reconcile({Direction.UP: {1: up}, Direction.DOWN: {2: down}})
    assert tc.wanted == {Direction.UP: {1: up}, Direction.DOWN: {2: down}}
    assert ebpf.wanted == tc.wanted
    assert router.guarded(Direction.UP) and router.guarded(Direction.DOWN)
    assert router.active_by_backend() == {
        "tc": {Direction.UP, Direction.DOWN},
        "ebpf": set(),
    }  # tc is the one chosen
    router.reconcile({})
    assert ebpf.wanted == {Direction.UP: {}, Direction.DOWN: {}}


class DividingEnforcer(FakeEnforcer):
    """A tc enforcer that divides slot 1's upload limit between namespaces and
    holds its sum itself (NamespaceShapers.guard_plan)."""

    def guard_plan(self, wanted: dict[Direction, Classes]) -> dict[Direction, Classes]:
        raised = {s: ClassSpec(c.rate_bps * 2, c.burst_bytes) if s == 1 else c
                  for s, c in wanted.get(Direction.UP, {}).items()}  # fmt: skip
        return {**wanted, Direction.UP: raised}


def test_the_guard_takes_its_rates_from_a_tc_enforcer_that_holds_a_sum_itself() -> None:
    """The guard runs before HTB and sees what each namespace offers: for an
    upload limit divided between namespaces, whose classes hold the sum,
    the enforcer raises the guard's rate (docs/backends.md)."""
    tc, ebpf = DividingEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter(
        {Direction.UP: ("tc", tc), Direction.DOWN: ("tc", tc)}, guard=("ebpf", ebpf)
    )
    spec = ClassSpec(1000, 131072)
    router.reconcile({Direction.UP: {1: spec, 2: spec}, Direction.DOWN: {1: spec}})
    assert tc.wanted == {Direction.UP: {1: spec, 2: spec}, Direction.DOWN: {1: spec}}
    assert ebpf.wanted == {
        Direction.UP: {1: ClassSpec(2000, 131072), 2: spec},
        Direction.DOWN: {1: spec},
    }


def test_a_direction_the_policer_enforces_itself_is_given_once() -> None:
    tc, ebpf = FakeEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter(
        {Direction.UP: ("tc", tc), Direction.DOWN: ("ebpf", ebpf)}, guard=("ebpf", ebpf)
    )
    spec = ClassSpec(1000, 131072)
    router.reconcile({Direction.UP: {1: spec}, Direction.DOWN: {2: spec}})
    assert tc.wanted == {Direction.UP: {1: spec}}
    assert ebpf.wanted == {Direction.DOWN: {2: spec}, Direction.UP: {1: spec}}
    assert router.active_by_backend() == {"tc": {Direction.UP}, "ebpf": {Direction.DOWN}}


def test_an_upload_tc_does_not_shape_is_counted_by_the_guard() -> None:
    """A slot tc shapes counts the shaper's output; one it cannot shape (its
    uplink policed instead) the policer's passed bytes, not nothing: with
    nothing the rate meter fell back to the socket counters, whose pure ACKs
    beside a fast download read as the upload limit not met."""
    tc, ebpf = FakeEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter(
        {Direction.UP: ("tc", tc), Direction.DOWN: ("tc", tc)}, guard=("ebpf", ebpf)
    )
    tc.sent = {Direction.UP: {1: 5_000}, Direction.DOWN: {1: 7_000}}
    ebpf.sent = {Direction.UP: {1: 9_000, 2: 3_000}, Direction.DOWN: {1: 8_000, 2: 4_000}}
    assert router.sent_bytes(Direction.UP) == {1: 5_000, 2: 3_000}
    assert router.sent_bytes(Direction.DOWN) == {1: 8_000, 2: 4_000}
    alone = BackendRouter({Direction.UP: ("ebpf", ebpf), Direction.DOWN: ("ebpf", ebpf)})
    assert alone.sent_bytes(Direction.UP) == {1: 9_000, 2: 3_000}


def test_an_upload_whose_uplink_becomes_policed_is_read_without_a_spike() -> None:
    """The slot's count moves from the class's to the guard's when tc stops
    shaping it (a foreign filter took its uplink's hook): the guard's total
    is far above the class's, and read as one count the rate spiked by the
    difference for a tick (review L4). Now it moves by the tick's bytes."""
    tc, ebpf = FakeEnforcer(), FakeEnforcer(queues=False)
    router = BackendRouter(
        {Direction.UP: ("tc", tc), Direction.DOWN: ("tc", tc)}, guard=("ebpf", ebpf)
    )
    tc.sent = {Direction.UP: {1: 1_000}}
    ebpf.sent = {Direction.UP: {1: 90_000}}
    first = router.sent_bytes(Direction.UP)[1]
    tc.sent = {Direction.UP: {}}  # no class holds slot 1 now
    ebpf.sent = {Direction.UP: {1: 91_000}}
    assert router.sent_bytes(Direction.UP)[1] - first == 1_000
