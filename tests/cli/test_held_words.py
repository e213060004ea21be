"""What `list` marks a limit with where the helper lists it held with a
problem: a quota whose count could not be read is held as last set (ListRules
in_force true), a block kept on after a refused change holds for now; neither
is "NOT ENFORCED" (review23)."""

from __future__ import annotations

import dataclasses

from chadthrottle.cli import ctl
from chadthrottle.contract import ApplicationInfo, Direction
from chadthrottle.helper.engine.gating import held_on
from chadthrottle.helper.engine.rule_listing import _gate_problem, _unread_problem

APP = ApplicationInfo("app:org.example.Player", "Player", "", (1000,), (5,), 0.0, 0.0, 0, 0, 0, 0)
UNREAD = _unread_problem("Input/output error", held=True)  # the helper's own words


def test_a_quota_whose_count_cannot_be_read_is_listed_held_with_what_is_left_unknown() -> None:
    """c84374e: "...: the kernel holds it as last set, what is left of it is not
    known", in force. `list` marked it NOT ENFORCED and said "up limit not
    enforced: ... the kernel holds it", and "1.50 GB of 2.00 GB left" as known."""
    app = dataclasses.replace(APP, up_limit_bps=1_000_000, up_quota_bytes=2 * 10**9,
                              up_quota_left_bytes=1_500_000_000, up_quota_period="day",
                              up_limit_problem=UNREAD)  # fmt: skip
    row = ctl.format_applications([app]).splitlines()[1]
    assert "NOT ENFORCED" not in row, row
    assert "1.50 GB" not in row and "quota of 2.00 GB this day, left not known" in row, row
    report = ctl.applications_report([app], paused=False)
    assert "not enforced" not in report.lower(), report
    assert report.endswith(f"app:org.example.Player: up quota held, count not known: {UNREAD}")
    alone = dataclasses.replace(app, up_limit_bps=0)  # a quota alone: said too
    assert ctl.applications_report([alone], paused=False).endswith(f"count not known: {UNREAD}")


def test_a_block_kept_on_after_a_refused_change_is_said_held_for_now() -> None:
    """A refused unblock: the kernel keeps the block for seconds more (HELD_BEFORE).
    `list` read "blocked (you) NOT ENFORCED" and "up block not enforced: ... it
    keeps the previous setting", as the window said before gui20."""
    problem = _gate_problem("Operation not permitted", 2.4)
    assert held_on(2.4, rated=False) in problem
    app = dataclasses.replace(APP, up_blocked=True, up_limit_problem=problem)
    row = ctl.format_applications([app]).splitlines()[1]
    assert "NOT ENFORCED" not in row and "CHANGE REFUSED" in row, row
    report = ctl.applications_report([app], paused=False)
    assert report.endswith(f"app:org.example.Player: up block change refused: {problem}"), report


class _Listing:
    """A helper client that lists the applications given."""

    def __init__(self, *apps: ApplicationInfo) -> None:
        self.apps = list(apps)

    def list_applications(self) -> list[ApplicationInfo]:
        return self.apps


def test_a_limit_set_beside_a_quota_whose_count_cannot_be_read_is_not_refused_as_not_enforced(
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    """`limit` checks the limit it set holds (status 6 where it does not): the rate
    holds, its quota as last set too; it said "not enforced: ... the kernel holds it"."""
    app = dataclasses.replace(APP, up_limit_bps=1_000_000, up_quota_bytes=2 * 10**9,
                              up_quota_left_bytes=10**9, up_quota_period="day",
                              up_limit_problem=UNREAD)  # fmt: skip
    ctl._check_enforced(_Listing(app), [(app.id, Direction.UP)])  # type: ignore[arg-type]
    assert (
        f"app:org.example.Player: up quota held, count not known: {UNREAD}"
        in capsys.readouterr().out
    )
