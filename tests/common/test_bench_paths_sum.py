"""bench/paths.py adds several streams' byte counts into one series for its
convergence windows. Taking each other stream's last report before the first
one's report times moved a 0.25 s window by up to one report interval (50 ms)
of that stream: two uplinks at a steady limit read 0.90-1.10 of it, and
"settled" after 3-4 s or never, while the shaper had settled in 0.3-0.5 s."""

from __future__ import annotations

from bench.limits import CONVERGE_BAND, settle_time, windows
from bench.paths import summed

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
