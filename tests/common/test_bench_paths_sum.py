"""bench/paths.py adds several streams' byte counts into one series for its
convergence windows. Taking each other stream's last report before the first
one's report times moved a 0.25 s window by up to one report interval (50 ms)
of that stream: two uplinks at a steady limit read 0.90-1.10 of it, and
"settled" after 3-4 s or never, while the shaper had settled in 0.3-0.5 s."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from statistics import median

from bench.limits import CONVERGE_BAND, settle_time, windows
from bench.paths import (
    LATE_PATHS,
    LINKS,
    PATHS,
    SINK_REPORT_S,
    WINDOW_STEP_S,
    every_s,
    sink_report_s,
    standing,
    summed,
)
from tests.support.netns import TRAFFIC_SCRIPT

RATE = 5_000_000.0  # bytes/s of each stream
REPORT_S = 0.05


def _reports(phase_s: float, drift: float, until_s: float = 4.0) -> list[tuple[float, int]]:
    """A sink's cumulative reports of a steady stream: every REPORT_S plus a
    little drift each (its own loop's time), starting at phase_s."""
    samples, t = [], phase_s
    while t < until_s:
        samples.append((t, int(RATE * t)))
        t += REPORT_S * (1 + drift)
    return samples


def test_two_steady_streams_add_up_to_a_steady_sum_in_every_window() -> None:
    # the second sink's reports drift against the first's: their phase wraps around
    first, second = _reports(0.0, 0.0), _reports(0.031, 0.013)
    rates = [rate for _, rate in windows(summed([first, second], 0.5), 0.5, 4.0)]
    assert len(rates) > 40
    assert all(abs(rate / (2 * RATE) - 1) < 0.005 for rate in rates), (min(rates), max(rates))
    assert settle_time(summed([first, second], 0.5), 2 * RATE, 0.5, 4.0) is not None


def test_the_sum_follows_a_change_of_rate_in_the_second_stream() -> None:
    """It is not smoothing the change away: the second stream doubling its rate
    at 2 s shows in the sum from the first window that holds it."""
    first = _reports(0.0, 0.0)
    second = [(t, v + int(RATE * max(0.0, t - 2.0))) for t, v in _reports(0.031, 0.013)]
    series = summed([first, second], 0.0)
    before = [rate for t, rate in windows(series, 1.0, 1.95)]
    after = [rate for t, rate in windows(series, 2.3, 4.0)]
    assert all(abs(rate / (2 * RATE) - 1) < CONVERGE_BAND for rate in before)
    assert all(abs(rate / (3 * RATE) - 1) < 0.01 for rate in after)


def _taking_turns(step_s: float, turn_phase_s: float, report_phase_s: float, drift: float,
                  until_s: float = 6.0) -> list[tuple[float, int]]:  # fmt: skip
    """A sink's reports every step_s of a stream that sends at twice its share
    for TURN_S and nothing for TURN_S: two sockets of one application in one
    class, each one's clamped window queued behind the other's (two uplinks'
    downloads at 300 KiB/s, 2026-12-05)."""

    def sent(t: float) -> float:
        turns, into = divmod(t + turn_phase_s, 2 * TURN_S)
        return 2 * RATE * (turns * TURN_S + min(into, TURN_S))

    samples, t = [], report_phase_s
    while t < until_s:
        samples.append((t, int(sent(t) - sent(0.0))))
        t += step_s * (1 + drift)
    return samples


TURN_S = 0.05


def test_streams_taking_turns_add_up_to_a_steady_sum_only_with_reports_finer_than_their_turns() -> (
    None
):
    """Their sum is steady (2 x RATE at every instant's average over a turn),
    but interpolating one between 50 ms reports put 0.25 s windows of the sum
    out of the band; the bench's sinks report every SINK_REPORT_S."""

    def sum_rates(step_s: float) -> list[float]:
        first = _taking_turns(step_s, 0.0, 0.0, 0.0)
        second = _taking_turns(step_s, TURN_S, 0.031 * step_s / REPORT_S, 0.013)
        return [rate / (2 * RATE) for _, rate in windows(summed([first, second], 0.5), 0.5, 6.0)]

    coarse = sum_rates(REPORT_S)
    assert any(abs(rate - 1) > CONVERGE_BAND for rate in coarse), (min(coarse), max(coarse))
    fine = sum_rates(SINK_REPORT_S)
    assert len(fine) > 400
    assert all(abs(rate - 1) < CONVERGE_BAND / 2 for rate in fine), (min(fine), max(fine))


def test_the_fine_sum_is_read_at_the_steps_of_the_windows_defined_on_50_ms_reports() -> None:
    """The sum of fine reports, kept at WINDOW_STEP_S steps: windows of 0.25-0.30 s
    as bench.limits' (a step a window ends at), and still steady for turn-taking streams."""
    first = _taking_turns(SINK_REPORT_S, 0.0, 0.0, 0.0)
    second = _taking_turns(SINK_REPORT_S, TURN_S, 0.0031, 0.013)
    series = every_s(summed([first, second], 0.5), WINDOW_STEP_S)
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(series)]
    assert min(steps) >= WINDOW_STEP_S and max(steps) < WINDOW_STEP_S + 2 * SINK_REPORT_S
    rates = [rate / (2 * RATE) for _, rate in windows(series, 0.5, 6.0)]
    assert len(rates) > 80
    assert all(abs(rate - 1) < CONVERGE_BAND / 2 for rate in rates), (min(rates), max(rates))


def test_a_sink_reports_as_often_as_it_is_asked() -> None:
    """tests/support/traffic.py --report-interval, as bench/paths.py asks for
    SINK_REPORT_S: a paced stream over loopback, the sink's report times."""
    from bench.paths import SINK_REPORT_S

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    common = ["--port", str(port), "--seconds", "3"]
    sink = subprocess.Popen(
        [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "sink", *common,
         "--report-interval", str(SINK_REPORT_S)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    source = None
    try:
        assert sink.stdout is not None
        first = sink.stdout.readline()
        assert "listening" in first, (first, sink.stderr.read() if sink.stderr else "")
        source = subprocess.Popen(
            [sys.executable, str(TRAFFIC_SCRIPT), "connect", "--host", "127.0.0.1", "--role", "source",
             *common, "--rate", "2000000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        times = []
        for line in sink.stdout:
            times.append(json.loads(line)["m"])
            if len(times) >= 60:
                break
        gaps = [b - a for a, b in itertools.pairwise(times[10:])]
        assert len(gaps) > 40 and median(gaps) < 2 * SINK_REPORT_S, median(gaps or [0.0])
    finally:
        for process in (source, sink):
            if process is not None:
                process.kill()
                process.wait()


def test_only_summed_streams_report_finely() -> None:
    """A single stream keeps the 50 ms reports (traffic.py's default): its upload
    sink at 5 ms read the first 300 KiB/s limit late in 3 of 5 runs, 0 of 5 at 50 ms."""
    assert sink_report_s(1) == 0.0
    assert sink_report_s(2) == SINK_REPORT_S


def test_each_path_makes_only_its_own_links_and_sums_several() -> None:
    """bench.paths makes a path's standing links only when it is asked for (a
    tun or a container's bridge in the helper's namespace is one more device
    its helper hooks); the late paths' second link comes after the limit, and
    a path with streams on two links reads their sum finely."""
    assert standing(["uplink", "later", "readded"]) == set()
    assert standing(["two", "tun"]) == {"two", "tun"}
    assert standing(PATHS) == {"namespace", "two", "tun", "container"}
    assert LATE_PATHS == ("later", "readded")
    summed_paths = {path for path in PATHS if sink_report_s(len(LINKS[path])) == SINK_REPORT_S}
    assert summed_paths == {"two", "later", "readded"}
