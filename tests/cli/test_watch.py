"""chadthrottle-ctl watch, the loop alone: lines on a fixed schedule, --count,
what ends it, and its arguments. (Against the real helper:
tests/e2e/test_cli_watch.py.)"""

from __future__ import annotations

import io
import json

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.watch import HelperGone, watch
from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper_errors import NO_REPLY, SERVICE_UNKNOWN, HelperClientError

APP = ApplicationInfo(id="exe:/usr/bin/curl", name="curl", icon="", uids=(1000,), pids=(7,), down_bps=2e6,
                      up_bps=0.0, rx_bytes=1, tx_bytes=2, down_limit_bps=0, up_limit_bps=0)  # fmt: skip


class _Clock:
    """Time that passes only when slept, or when a call is slow."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class _Client:
    """Answers ListApplications from a script: an ApplicationInfo list, or an error to raise."""

    def __init__(self, clock: _Clock, answers: list[object], call_s: float = 0.0) -> None:
        self.clock, self.answers, self.call_s = clock, answers, call_s

    def list_applications(self) -> list[ApplicationInfo]:
        self.clock.now += self.call_s
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, list)
        return answer

    def get_limits_paused(self) -> bool:
        return False


def _run(client: _Client, clock: _Clock, count: int | None, as_json: bool = True) -> list[str]:
    out = io.StringIO()
    watch(
        client,
        as_json=as_json,
        interval_s=1.0,
        count=count,
        out=out,
        clock=clock,
        sleep=clock.sleep,
    )  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def test_count_lines_on_a_fixed_schedule() -> None:
    clock = _Clock()
    lines = _run(_Client(clock, [[APP]] * 3, call_s=0.25), clock, count=3)
    assert len(lines) == 3 and clock.sleeps == [
        0.75,
        0.75,
    ]  # the call's time is taken from the wait
    report = json.loads(lines[0])
    assert report["paused"] is False and report["applications"][0]["pids"] == [7]
    assert list(report["applications"][0]) == list(json.loads(ctl.to_json([APP]))[0])


def test_a_slow_answer_does_not_bring_a_burst_of_lines() -> None:
    clock = _Clock()
    client = _Client(clock, [[APP]] * 4, call_s=0.25)
    client.answers.insert(0, [APP])
    original = client.list_applications

    def slow_once() -> list[ApplicationInfo]:
        if len(client.answers) == 4:
            clock.now += 2.5  # the second call takes 2.75 s
        return original()

    client.list_applications = slow_once  # type: ignore[method-assign]
    _run(client, clock, count=4)
    # after the slow line the next one follows at once, then a full interval
    # (not two lines at once to catch up with the schedule)
    assert clock.sleeps == [0.75, 0.75] and clock.now == pytest.approx(
        100 + 0.25 + 0.75 + 2.75 + 0.25 + 0.75 + 0.25
    )


def test_the_helper_going_away_after_a_line_is_helper_gone() -> None:
    for error in (
        HelperClientError(SERVICE_UNKNOWN, "no helper"),
        HelperClientError(NO_REPLY, "recipient left"),
    ):
        clock = _Clock()
        with pytest.raises(HelperGone):
            _run(_Client(clock, [[APP], error]), clock, count=None)


def test_no_helper_at_the_first_line_is_the_usual_error() -> None:
    clock = _Clock()
    with pytest.raises(HelperClientError):
        _run(_Client(clock, [HelperClientError(SERVICE_UNKNOWN, "no helper")]), clock, count=None)


def test_without_json_a_table_and_a_blank_line_each_time() -> None:
    clock = _Clock()
    lines = _run(_Client(clock, [[APP]] * 2), clock, count=2, as_json=False)
    assert (
        lines[0].split()[:2] == ["ID", "NAME"]
        and lines[2] == ""
        and lines[3].split()[:2] == ["ID", "NAME"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "not a count"),
        (["--count", "-1"], "not a count"),
        (["--count", "x"], "not a count"),
        # "²".isdigit() yet int("²") fails: it was "invalid parse_count_argument value"
        (["--count", "\u00b2"], "not a count"),
        (["--count", "9" * 5000], "not a count"),  # past int()'s 4,300 digits
        (["--interval", "0.01"], "not between"),
        (["--interval", "nan"], "not between"),
        (["--interval", "inf"], "not between"),
        (["--interval", "soon"], "not a number"),
    ],
)
def test_bad_arguments_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        ctl.main(["watch", *args])
    assert caught.value.code == ctl.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_defaults() -> None:
    arguments = ctl.build_parser().parse_args(["watch"])
    assert (arguments.json, arguments.interval, arguments.count) == (False, 1.0, None)
