"""Every reason a priority is not in force, as the window, the tray's tooltip
and `chadthrottle-ctl list`/`rules` show it: in words a desktop user knows
(walk26 read "up is not ordered: ..."), saying what is not prioritized and why."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.limits import LinkSetting
from chadthrottle.helper.engine.link_plan import LinkFacts, link_problem, priority_problem

BOTH = frozenset(Direction)
TC = {d: "tc" for d in Direction}


def _every_problem() -> list[str]:
    """One problem per reason link_plan can give (paused aside: the contract's words)."""
    link = LinkSetting(down_bps=1000, up_bps=1000)
    full = {d: 1000 for d in Direction}
    down_only = {Direction.DOWN: 1000}
    estimate = LinkSetting(estimate=True)
    cases = [
        (LinkFacts(LinkSetting(), {}, frozenset(), TC), {}),
        (LinkFacts(estimate, {}, frozenset(), TC), {}),
        (LinkFacts(LinkSetting(down_bps=1000), down_only, BOTH, TC), {}),
        (LinkFacts(estimate, down_only, BOTH, TC), {}),
        (LinkFacts(link, full, BOTH, {Direction.DOWN: "ebpf", Direction.UP: "tc"}), {}),
        (LinkFacts(link, full, frozenset({Direction.UP}), TC), {}),
        (LinkFacts(link, full, frozenset({Direction.UP}), TC, apply_error="File exists"), {}),
        (LinkFacts(link, full, BOTH, TC, gaps={Direction.UP: "wlan0: a filter runs first"}), {}),
        (LinkFacts(link, full, BOTH, TC), {"elsewhere": "net:[4026532999]"}),
        (LinkFacts(link, full, BOTH, TC), {"elsewhere": "net:[1]", "forwarded": {Direction.UP}}),
        (LinkFacts(link, full, BOTH, TC), {"astray": ["eth1"], "linked": ["wg0"]}),
        (LinkFacts(link, full, BOTH, TC), {"astray": ["eth1"]}),
    ]
    said = [priority_problem(facts, **extra) for facts, extra in cases]  # type: ignore[arg-type]
    assert all(said), "each case is one a priority is not in force in"
    # GetLinkShaping's own (the status line's tooltip, `capacity`) shares the reasons
    said += [link_problem(facts, True) for facts, extra in cases if not extra]
    return said


def test_no_priority_problem_speaks_of_up_down_or_ordering() -> None:
    for problem in _every_problem():
        words = problem.split()
        assert "ordered" not in words and "order" not in words, problem
        assert not {"up", "down"} & set(words), problem  # Direction's values, not words
        assert not problem.endswith("...") or problem.startswith("estimating the link"), problem


def test_each_priority_problem_says_what_is_not_prioritized_and_what_to_do() -> None:
    link = LinkSetting(down_bps=6000)
    facts = LinkFacts(link, {Direction.DOWN: 6000}, BOTH, TC)
    assert priority_problem(facts) == (
        "uploads are not prioritized: no upload capacity is set (set it in the link capacity)"
    )
    none = LinkFacts(LinkSetting(), {}, frozenset(), TC)
    assert "set it to your connection's download and upload speeds" in priority_problem(none)
    cannot = "{} cannot be prioritized: the ebpf backend limits them here, and priorities need the helper's tc backend"
    ebpf = LinkFacts(LinkSetting(up_bps=9), {Direction.UP: 9}, BOTH, {d: "ebpf" for d in Direction})
    assert priority_problem(ebpf) == "; ".join(
        [cannot.format("downloads"), cannot.format("uploads")]
    )


def test_no_capacity_is_not_the_cure_said_where_the_backend_cannot_prioritize() -> None:
    """Under the ebpf backend a capacity changes nothing: "no link capacity is
    set: set it to your connection's download and upload speeds" (and, while
    estimating, "priorities apply once it is known") sent the user to a cure
    that does not cure (review28). The backend is named; where one direction
    is tc's, the capacity is still asked for, and the other is said apart."""
    cannot = "{} cannot be prioritized: the ebpf backend limits them here, and priorities need the helper's tc backend"
    both = "; ".join([cannot.format("downloads"), cannot.format("uploads")])
    ebpf = {d: "ebpf" for d in Direction}
    for setting in (LinkSetting(), LinkSetting(estimate=True)):
        facts = LinkFacts(setting, {}, frozenset(), ebpf)
        assert priority_problem(facts) == both
        assert link_problem(facts, True) == both
    mixed = LinkFacts(LinkSetting(), {}, frozenset(), {Direction.DOWN: "ebpf", Direction.UP: "tc"})
    assert priority_problem(mixed) == (
        "no link capacity is set: set it to your connection's download and upload speeds; "
        + cannot.format("downloads")
    )
