"""Link shaping (issue 16) as the engine plans it: the capacity in force per
direction, and what keeps priorities from being in force, in words.

Pure logic. The capacity in force is the one set (SetLinkCapacity) or, while
the helper estimates it, the estimate (capacity_estimate.py feeds
Engine.set_estimated_capacity), starting from the one set. The kernel side is
TcShaper.set_link (docs/backends.md, "Priorities and link shaping").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from chadthrottle.contract import Direction, LinkShapingInfo
from chadthrottle.helper.engine.limits import LimitTable, LinkSetting, priority_of
from chadthrottle.helper.engine.ports import ShaperPort
from chadthrottle.priority import Priority

NO_CAPACITY = "no link capacity is set: priorities need it"
ESTIMATING = "estimating the link capacity..."
# A priority's problem says what is not prioritized, why, and what the user
# can do: "up is not ordered: ..." was words a new user did not know (walk26).
PRIORITY_NO_CAPACITY = (
    "no link capacity is set: set it to your connection's download and upload speeds"
)
PRIORITY_ESTIMATING = (
    "the link capacity is still being estimated: priorities apply once it is known"
)
_WORDS = {Direction.DOWN: "download", Direction.UP: "upload"}
_WAYS = {Direction.DOWN: "downloads", Direction.UP: "uploads"}


def _no_capacity(facts: LinkFacts, direction: Direction) -> str:
    """A direction without a capacity in force: being estimated, or none set."""
    way, word = _WAYS[direction], _WORDS[direction]
    if facts.link.estimate:
        return f"{way} are not prioritized yet: the {word} capacity is still being estimated"
    return f"{way} are not prioritized: no {word} capacity is set (set it in the link capacity)"


def _backend_reason(facts: LinkFacts, direction: Direction) -> str:
    """Why a direction is never prioritized, capacity or not: its backend has no
    tree to order in (the policer); "" with the tc backend."""
    backend = facts.backends.get(direction, "chosen")
    if backend == "tc":
        return ""
    return (f"{_WAYS[direction]} cannot be prioritized: the {backend} backend limits them "
            "here, and priorities need the helper's tc backend")  # fmt: skip


def _no_capacity_at_all(facts: LinkFacts, capacity_words: str) -> str:
    """No capacity in force in either direction: said with what else stands in
    the way. Under the ebpf backend in both directions a capacity changes
    nothing, so it is not what the user is told to set (review28: "set it to
    your connection's ... speeds" was said where no capacity would help)."""
    cannot = [reason for d in Direction if (reason := _backend_reason(facts, d))]
    if len(cannot) == len(Direction):
        return "; ".join(cannot)
    return "; ".join([capacity_words, *cannot])


def _kernel_reasons(facts: LinkFacts, direction: Direction) -> list[str]:
    """Why a direction with a capacity is not (wholly) prioritized by the kernel."""
    way = _WAYS[direction]
    if backend := _backend_reason(facts, direction):
        return [backend]
    if direction not in facts.shaping:
        if facts.apply_error:
            return [
                f"{way} are not prioritized: the kernel refused the link's setup: {facts.apply_error}"
            ]
        return [f"{way} are not prioritized yet: the helper is preparing the link"]
    if facts.gaps.get(direction):
        return [f"some {way} are not prioritized: {facts.gaps[direction]}"]
    return []


def capacities(
    link: LinkSetting, estimated: Mapping[Direction, int], paused: bool
) -> dict[Direction, int]:
    """Per direction, the capacity to shape under now (only those with one):
    nothing while limits are paused (traffic flows as without the helper)."""
    if paused:
        return {}
    found = {}
    for direction in Direction:
        capacity = (
            (estimated.get(direction) or link.set_bps(direction))
            if link.estimate
            else link.set_bps(direction)
        )
        if capacity:
            found[direction] = capacity
    return found


@dataclass(frozen=True)
class LinkFacts:
    """What the engine knows of the link shaping now, for the problems."""

    link: LinkSetting
    capacities: Mapping[Direction, int]  # in force (capacities())
    shaping: frozenset[Direction]  # the kernel holds the link tree now
    backends: Mapping[Direction, str]  # which backend enforces each direction ("tc", "ebpf")
    paused_problem: str = ""  # "limits are paused" while they are
    apply_error: str = ""  # why the kernel refused the last plan, "" when it did not
    # Per direction, why some uplink's traffic passes the tree (a foreign filter ahead
    # of ours, an uplink we may not hook: ShaperPort.enforcement_gaps); absent when none.
    gaps: Mapping[Direction, str] = field(default_factory=dict)
    # Why a container's forwarded traffic is not ordered through some device (a
    # filter of someone else's can set what our hook carries: ShaperPort.carrying_gaps)
    uncarried: str = ""


def link_facts(
    table: LimitTable,
    estimated: Mapping[Direction, int],
    shaper: ShaperPort,
    paused_problem: str,
    apply_error: str,
) -> LinkFacts:
    """The facts for a table, from what the shaper says it holds now (asked, never told)."""
    gaps = {d: "; ".join(reasons) for d, reasons in shaper.link_gaps().items() if reasons}
    return LinkFacts(
        table.link,
        capacities(table.link, estimated, table.paused),
        frozenset(shaper.linked_directions()),
        {direction: shaper.backend_of(direction) for direction in Direction},
        paused_problem,
        apply_error,
        gaps,
        "; ".join(shaper.carrying_gaps()),
    )


def shaping_info(table: LimitTable, facts: LinkFacts, interfaces: Sequence[str]) -> LinkShapingInfo:
    """GetLinkShaping: the setting, the capacity in force, where the tree
    stands (interfaces: the uplinks the shaper holds it on) and what is not done."""
    link, in_force = table.link, facts.capacities
    used = any(priority_of(limits) is not Priority.NORMAL for _, limits in table.items())
    return LinkShapingInfo(
        down_capacity_bps=in_force.get(Direction.DOWN, 0),
        up_capacity_bps=in_force.get(Direction.UP, 0),
        down_set_bps=link.down_bps,
        up_set_bps=link.up_bps,
        estimate=link.estimate,
        down_shaping=Direction.DOWN in facts.shaping,
        up_shaping=Direction.UP in facts.shaping,
        interfaces=tuple(interfaces),
        problem=link_problem(facts, used),
    )


def link_problem(facts: LinkFacts, priorities_used: bool) -> str:
    """Why link shaping asked for (a capacity, or priorities) is not (wholly) done; "" when it is."""
    if facts.link.is_off and not priorities_used:
        return ""
    if facts.paused_problem:
        return facts.paused_problem
    if not facts.capacities:
        return _no_capacity_at_all(facts, ESTIMATING if facts.link.estimate else NO_CAPACITY)
    reasons = []
    for direction in Direction:
        if direction not in facts.capacities:
            if facts.link.estimate:
                reasons.append(_no_capacity(facts, direction))
            continue
        reasons += _kernel_reasons(facts, direction)
    return "; ".join(reasons + _refused(facts, reasons))


def priority_problem(
    facts: LinkFacts,
    elsewhere: str = "",
    astray: Sequence[str] = (),
    linked: Sequence[str] = (),
    forwarded: Collection[Direction] = (),
) -> str:
    """Why one application's priority (not normal) is not (wholly) in force;
    elsewhere: the network namespace its traffic uses besides the helper's, if
    any; astray: the devices of the helper's namespace its traffic crossed
    lately that the link tree is not on (nor behind), linked: those it is on;
    forwarded: the directions in which the uplinks' hooks classed its packets
    from another namespace lately (the kernel's counts, crossed.ForwardedClassed):
    its traffic there is said ordered in those only."""
    if facts.paused_problem:
        return facts.paused_problem
    if not facts.capacities:
        return _no_capacity_at_all(
            facts, PRIORITY_ESTIMATING if facts.link.estimate else PRIORITY_NO_CAPACITY
        )
    reasons = []
    for direction in Direction:
        if direction not in facts.capacities:
            reasons.append(_backend_reason(facts, direction) or _no_capacity(facts, direction))
        else:
            reasons += _kernel_reasons(facts, direction)
    # A forwarded flow's download is classed by the tuple its upload noted: with
    # no upload carried, neither is.
    why = f" ({facts.uncarried})" if facts.uncarried else ""
    if elsewhere and not forwarded:
        reasons.append(
            f"its traffic in another network namespace ({elsewhere}) is not prioritized{why}"
        )
    elif elsewhere and len(forwarded) < len(Direction):
        (missing,) = set(Direction) - set(forwarded)
        reasons.append(f"its {_WAYS[missing]} in another network namespace ({elsewhere}) are not prioritized"
                       + (why if missing is Direction.UP else ""))  # fmt: skip
    if astray and facts.shaping:
        reasons.append(
            f"its traffic through {', '.join(astray)} is not prioritized: priorities apply on "
            + (f"{', '.join(linked)} only" if linked else "no network interface yet")
        )
    return "; ".join(reasons + _refused(facts, reasons))


def _refused(facts: LinkFacts, reasons: list[str]) -> list[str]:
    """The kernel's refusal of the last plan while a tree stands (a class
    may be missing), unless a reason above already gives it."""
    if (
        not facts.apply_error
        or not facts.shaping
        or any(facts.apply_error in reason for reason in reasons)
    ):
        return []
    return [f"the kernel refused the last change: {facts.apply_error}"]
