"""What the detail graph plots: the window's own samples on a real time
axis, after the helper's per-minute history of the same application.

A graph that starts empty at every launch hides what just happened; the
helper keeps every application's bytes per minute (GetUsage), so the first
hour is filled from those (a minute's mean rate, at the minute's middle; a
minute the helper recorded nothing in moved nothing it saw, and is 0). The
window's samples follow, each at its own time: where polls are missing
(the helper away, the machine asleep) the line breaks (NaN) instead of
joining samples that were minutes apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from chadthrottle.gui.models.history import FloatArray
from chadthrottle.usage_contract import UsageRow

MINUTE_S = 60
GAP_STEPS = 2.5  # samples further apart than this many poll intervals: a gap


def minute_points(
    rows: Sequence[UsageRow], since: float, until: float
) -> tuple[FloatArray, FloatArray]:
    """(times, rates) of the minutes that end by ``until`` and begin at or
    after ``since``: each at its middle, its bytes over 60 s; minutes between
    the first recorded one and ``until`` without a row are 0."""
    minutes = {row.start: row for row in rows if row.end - row.start == MINUTE_S}
    first = min((start for start in minutes if start >= since), default=None)
    if first is None:
        return np.zeros(0), np.zeros((0, 2))
    starts = np.arange(first, until - MINUTE_S + 1, MINUTE_S, dtype=np.int64)
    rates = np.zeros((len(starts), 2))
    for index, start in enumerate(starts):
        row = minutes.get(int(start))
        if row is not None:
            rates[index] = (row.down_bytes / MINUTE_S, row.up_bytes / MINUTE_S)
    return starts.astype(np.float64) + MINUTE_S / 2, rates


def with_gaps(times: FloatArray, rates: FloatArray, step_s: float) -> tuple[FloatArray, FloatArray]:
    """The samples with a NaN row wherever two were more than GAP_STEPS
    intervals apart (pyqtgraph breaks the line there)."""
    if len(times) < 2:
        return times, rates
    gaps = np.nonzero(np.diff(times) > step_s * GAP_STEPS)[0]
    if not len(gaps):
        return times, rates
    return (np.insert(times, gaps + 1, times[gaps] + step_s),
            np.insert(rates, gaps + 1, np.nan, axis=0))  # fmt: skip


def graph_series(live_times: FloatArray, live_rates: FloatArray, minutes: Sequence[UsageRow],
                 now: float, span_s: float, step_s: float) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """(seconds before now, rates (n, 2)) for a graph of the last ``span_s``:
    the helper's minutes before the first live sample, then the live ones.
    Columns past the two rates (the limits held, history.py) ride along: NaN
    over the helper's minutes (no limit known there) and at gaps."""
    keep = live_times >= now - span_s
    live_times, live_rates = live_times[keep], live_rates[keep]
    first_live = float(live_times[0]) if len(live_times) else now
    seed_times, seed_rates = minute_points(minutes, now - span_s, first_live)
    extra = live_rates.shape[1] - 2
    if extra > 0:
        seed_rates = np.hstack([seed_rates, np.full((len(seed_rates), extra), np.nan)])
    times = np.concatenate([seed_times, live_times])
    rates = np.concatenate([seed_rates, live_rates]) if len(seed_rates) else live_rates
    gap_step = max(step_s, MINUTE_S) if len(seed_times) else step_s
    if len(seed_times) and len(live_times):  # the seam: the minutes' own spacing
        times_split, rates_split = with_gaps(live_times, live_rates, step_s)
        times = np.concatenate([seed_times, times_split])
        rates = np.concatenate([seed_rates, rates_split])
        if first_live - seed_times[-1] > MINUTE_S * 1.5 + step_s * GAP_STEPS:
            times = np.insert(times, len(seed_times), seed_times[-1] + MINUTE_S / 2)
            rates = np.insert(rates, len(seed_times), np.nan, axis=0)
    else:
        times, rates = with_gaps(times, rates, gap_step)
    return times - now, rates


def limit_steps(x: FloatArray, held: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The limit line through samples at x (held: the limit each was measured
    under, NaN none): between two samples, the looser of their two limits, so
    the rate's line between them, which runs from one to the other, is never
    drawn above a limit that held it: a limit lowered steps down at the first
    sample under it, one raised steps up at the last sample under the old.
    Where either sample held none (or is a gap) no line: (xs, ys) for a curve
    that breaks at NaN."""
    if len(x) < 2:
        return np.zeros(0), np.zeros(0)
    xs = np.column_stack([x[:-1], x[1:]]).ravel()
    ys = np.repeat(limit_between(held), 2)
    return xs, ys


def limit_between(held: FloatArray) -> FloatArray:
    """The limit between each two samples (n - 1 of them): the looser of the
    two they were measured under, NaN where either held none (limit_steps)."""
    if len(held) < 2:
        return np.zeros(0)
    between = np.fmax(held[:-1], held[1:])  # fmax: NaN only where both are NaN
    between[np.isnan(held[:-1]) | np.isnan(held[1:])] = np.nan
    return between
