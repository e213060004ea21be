"""chadthrottle-ctl priority and capacity: what argparse accepts (status 2
before any call), how list shows a priority, and how capacity shows the link
shaping (pure; the calls against the real helper are in
tests/e2e/test_cli_and_denial.py)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.output import format_rtt, format_rules
from chadthrottle.cli.priorities import (
    OLDER_HELPER,
    PRIORITY_WORDS,
    _cli_words,
    _wanted,
    format_link_shaping,
    priority_reasons,
)
from chadthrottle.contract import (
    ADMIN_OWNER,
    ESTIMATE_COST,
    ApplicationInfo,
    LinkShapingInfo,
    RuleInfo,
)
from chadthrottle.helper_errors import UNKNOWN_METHOD, HelperClientError
from chadthrottle.priority import Priority

APP = ApplicationInfo("app:org.example.Call", "Call", "", (1000,), (5,), 0.0, 0.0, 0, 0, 0, 0)


def test_priority_words_in_any_case_and_a_bad_one_named(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ctl.build_parser()
    assert parser.parse_args(["priority", "pid:7", "Critical"]).priority is Priority.CRITICAL
    assert parser.parse_args(["priority", "pid:7", "normal", "--own"]).priority is Priority.NORMAL
    with pytest.raises(SystemExit) as ended:
        ctl.main(["priority", "pid:7", "urgent"])
    assert ended.value.code == ctl.EXIT_USAGE
    # the help's words, without importing Priority
    assert ", ".join(p.value for p in Priority) == PRIORITY_WORDS
    assert (
        "argument PRIORITY: not a priority: 'urgent' (one of critical, high, normal, low)"
        in capsys.readouterr().err
    )


def test_capacity_rates_read_bytes_and_spelt_out_bits() -> None:
    arguments = ctl.build_parser().parse_args(["capacity", "--down", "50Mbit", "--up", "1.25M"])
    assert (arguments.down, arguments.up, arguments.estimate, arguments.off) == (
        6_250_000,
        1_250_000,
        None,
        False,
    )
    kept = ctl.build_parser().parse_args(["capacity", "--up", "off", "--no-estimate"])
    assert (kept.down, kept.up, kept.estimate) == (False, None, False)  # False: not given, kept
    assert (
        ctl.build_parser().parse_args(["limit", "x", "--down", "8 Mbit/s"]).down == 1_000_000
    )  # as for limit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["capacity", "--off", "--down", "5M"], "--off takes no"),
        (["capacity", "--off", "--estimate"], "--off takes no"),
        (["capacity", "--json", "--up", "5M"], "--json only shows"),
        (["capacity", "--down", "5 parsecs"], "not a rate"),
        (["capacity", "--up", "100bit"], "below the minimum"),
        (["priority", "pid:7"], "PRIORITY"),
    ],
)
def test_capacity_options_that_do_not_go_together_end_with_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        ctl.main(args)
    assert ended.value.code == ctl.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_list_shows_a_priority_its_owner_and_rtt_and_blank_for_normal() -> None:
    protected = dataclasses.replace(
        APP, priority="critical", priority_owner=os.getuid(), rtt_us=23_456
    )
    header, row = ctl.format_applications([protected]).splitlines()
    assert header.split()[-1] == "PRIORITY" and row.endswith("critical (you, rtt 23.5 ms)")
    normal = dataclasses.replace(APP, rtt_us=5_000)
    assert (
        ctl.format_applications([normal]).splitlines()[1].endswith("none")
    )  # UP LIMIT, then nothing
    assert [format_rtt(us) for us in (140, 23_456, 180_400)] == ["0.14 ms", "23.5 ms", "180 ms"]
    assert json.loads(ctl.to_json([protected]))[0]["priority"] == "critical"


def test_a_priority_not_in_force_is_marked_and_explained() -> None:
    waiting = dataclasses.replace(APP, priority="high", priority_problem="no link capacity is set")
    assert "high (admin) NOT ENFORCED" in ctl.format_applications([waiting])
    assert ctl.applications_report([waiting], paused=False).endswith(
        "app:org.example.Call: priority high not in force: no link capacity is set"
    )
    assert priority_reasons(waiting, Priority.HIGH) == [
        "app:org.example.Call: priority high: no link capacity is set"
    ]
    outranked = dataclasses.replace(APP, priority="low", priority_owner=ADMIN_OWNER)
    assert priority_reasons(outranked, Priority.CRITICAL) == [
        "app:org.example.Call: the priority low (admin) applies instead of critical while it exists"
    ]
    assert priority_reasons(dataclasses.replace(APP, priority="critical"), Priority.CRITICAL) == []


def test_capacity_shows_each_direction_set_or_estimated_and_the_problem() -> None:
    shaping = LinkShapingInfo(down_capacity_bps=5_900_000, up_capacity_bps=1_250_000, down_set_bps=6_250_000,
                              up_set_bps=0, estimate=True, down_shaping=True, up_shaping=False,
                              interfaces=("eth0", "wl\x1bp2s0"), problem="up: no uplink answers")  # fmt: skip
    assert format_link_shaping(shaping).splitlines() == [
        "down capacity 5.90 MB/s (47.2 Mbit/s), estimated, started from 6.25 MB/s (50.0 Mbit/s) set; in force",
        "up   capacity 1.25 MB/s (10.0 Mbit/s), estimated; not in force now",
        "estimate: on",
        "paced on network interfaces: eth0, wl\\x1bp2s0",
        "problem: up: no uplink answers",
    ]
    off = format_link_shaping(LinkShapingInfo()).splitlines()
    assert off == [
        "down capacity not set",
        "up   capacity not set",
        "estimate: off",
        "paced on network interfaces: -",
    ]
    assert "6.25 MB/s (50.0 Mbit/s), set; in force" in format_link_shaping(
        LinkShapingInfo(down_capacity_bps=6_250_000, down_set_bps=6_250_000, down_shaping=True)
    )
    # set, none in force (limits paused): the window's "not in force", not "not set"
    assert format_link_shaping(LinkShapingInfo(down_set_bps=6_250_000)).splitlines()[0] == (
        "down capacity 6.25 MB/s (50.0 Mbit/s), set; not in force now"
    )
    # estimating, nothing measured yet: the window's "estimating…"
    assert format_link_shaping(LinkShapingInfo(estimate=True)).splitlines()[0] == (
        "down capacity estimating…; not in force now"
    )


def test_capacity_help_says_it_in_the_window_s_words(capsys: pytest.CaptureFixture[str]) -> None:
    """--help said "link shaping off", "unshaped" where the window says "Link
    capacity: not set" and "Clear capacity"."""
    with pytest.raises(SystemExit):
        ctl.main(["capacity", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "shaping" not in text and "unshaped" not in text, text
    assert "in force, not in force now, or not set" in text
    assert "clear the link capacity (not set)" in text


def test_a_refusal_names_the_options_not_the_bus_arguments() -> None:
    assert _cli_words("down_bps must be 0 (not shaped) or 1000..100000000000 bytes/s, not 5") == (
        "--down must be 0 (not shaped) or 1000..100000000000 bytes/s, not 5"
    )


def test_rules_show_a_priority() -> None:
    rule = RuleInfo("app:org.example.Call", "down", 0, 0, ADMIN_OWNER, True, priority="critical")
    assert format_rules([rule]).splitlines()[1].split()[5] == "critical"


def test_rules_say_a_priority_not_in_force_as_list_does() -> None:
    """Under Xvfb (walk26) `list` said Fetcher's high priority was NOT
    ENFORCED (no upload capacity) while `rules` read "IN FORCE yes" on both
    of its priority-only rows: ListRules' in_force speaks for limits only."""
    problem = "no upload capacity is set"
    fetcher = dataclasses.replace(APP, priority="high", priority_problem=problem)
    alone = RuleInfo(APP.id, "up", 0, 0, 1000, True, priority="high")
    limited = RuleInfo(APP.id, "down", 60_000, 0, 1000, True, priority="high")
    lines = format_rules([alone, limited], [fetcher]).splitlines()
    assert lines[1].endswith(f"no (priority: {problem})"), lines
    assert lines[2].endswith(f"yes; priority not in force: {problem}"), lines
    in_force = dataclasses.replace(fetcher, priority_problem="")
    assert format_rules([alone], [in_force]).splitlines()[1].endswith("yes")


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--down", "40M"], (40_000_000, 2_000_000, True)),  # up and estimation kept
        (["--up", "off", "--no-estimate"], (6_000_000, 0, False)),
        (["--estimate"], (0, 0, True)),  # from scratch: no starting point
        (["--estimate", "--up", "1M"], (0, 1_000_000, True)),
    ],
)
def test_capacity_keeps_what_it_does_not_give_but_estimate_starts_from_scratch(
    args: list[str], wanted: tuple[int, int, bool]
) -> None:
    current = LinkShapingInfo(down_set_bps=6_000_000, up_set_bps=2_000_000, estimate=True)
    assert _wanted(current, ctl.build_parser().parse_args(["capacity", *args])) == wanted


class _OlderHelper:
    """A client whose helper predates API 5: what dbus answers for a method it lacks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _OlderHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        def call(*args: object, **kwargs: object) -> None:
            raise HelperClientError(UNKNOWN_METHOD, f'No such method "{name}"')

        return call


@pytest.mark.parametrize(
    "args", [["priority", "pid:7", "high"], ["capacity"], ["capacity", "--off"]]
)
def test_an_older_helper_is_named_as_such(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("chadthrottle.blocking_client.BlockingHelperClient", _OlderHelper)
    with pytest.raises(SystemExit) as ended:
        ctl.main(args)
    assert ended.value.code == ctl.EXIT_FAILED
    assert capsys.readouterr().err == f"chadthrottle-ctl: {OLDER_HELPER}\n"


def test_capacity_help_says_what_estimating_costs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ctl.main(["capacity", "--help"])
    assert " ".join(ESTIMATE_COST.split()) in " ".join(capsys.readouterr().out.split())
