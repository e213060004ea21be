"""A short per-application rate history for sparklines and the detail graph.

Two numpy ring buffers per application: one sample per poll for the last five
minutes, and ten-poll means for the last hour. Bounded memory whatever the
number of applications (about 25 KB each). Each sample keeps its wall-clock
time, so the detail graph has a real time axis: a poll that did not happen
(the helper away, the machine asleep) is a gap, not samples pushed together.
Each also keeps the limit that held as it was measured (NaN: none held), so
the graph draws the limit of each moment, not today's over the past minute.
"""

from __future__ import annotations

import math
import time

import numpy as np
import numpy.typing as npt

FINE_SAMPLES = 300
COARSE_SAMPLES = 360
COARSE_EVERY = 10
SHARED_SCALE_SAMPLES = 60  # the sparklines' minute

FloatArray = npt.NDArray[np.float64]


NO_LIMITS = (math.nan, math.nan)  # nothing held either direction


def looser(held: float, other: float) -> float:
    """The looser of two held limits (bytes/s, NaN: none held, which is looser
    than any): ten polls' mean stays under the loosest limit among them."""
    return math.nan if math.isnan(held) or math.isnan(other) else max(held, other)


class _Ring:
    """Fixed-size ring of (down, up) pairs, oldest first on read; with
    ``limits``, the (down, up) limit held at each pair too."""

    def __init__(self, size: int, limits: bool = False) -> None:
        self._data = np.zeros((size, 2), dtype=np.float64)
        self._times = np.zeros(size, dtype=np.float64)  # unix seconds of each pair
        self._limits = np.full((size, 2), np.nan) if limits else None
        self._next = 0
        self._count = 0

    def append(
        self,
        down_bps: float,
        up_bps: float,
        at: float = 0.0,
        limits: tuple[float, float] = NO_LIMITS,
    ) -> None:
        self._data[self._next, 0] = down_bps
        self._data[self._next, 1] = up_bps
        self._times[self._next] = at
        if self._limits is not None:  # two scalars: a row from a tuple cost 4x as much
            self._limits[self._next, 0] = limits[0]
            self._limits[self._next, 1] = limits[1]
        self._next = (self._next + 1) % len(self._data)
        self._count = min(self._count + 1, len(self._data))

    def last(self, count: int) -> FloatArray:
        count = min(count, self._count)
        if count == 0:
            return np.zeros((0, 2), dtype=np.float64)
        indices = (np.arange(self._next - count, self._next)) % len(self._data)
        return self._data[indices]

    def last_times(self, count: int) -> FloatArray:
        """The times of the pairs ``last(count)`` returns."""
        count = min(count, self._count)
        return self._times[(np.arange(self._next - count, self._next)) % len(self._data)]

    def last_limits(self, count: int) -> FloatArray:
        """The limits held at the pairs ``last(count)`` returns, shape (n, 2)."""
        count = min(count, self._count)
        if self._limits is None:
            return np.full((count, 2), np.nan)
        return self._limits[(np.arange(self._next - count, self._next)) % len(self._data)]

    def __len__(self) -> int:
        return self._count


class RateHistory:
    """Recent down/up rates of one application, in bytes/s."""

    def __init__(self) -> None:
        self._fine = _Ring(FINE_SAMPLES, limits=True)
        self._coarse = _Ring(COARSE_SAMPLES, limits=True)
        # Plain floats: a numpy += per application and poll cost more than the rest of append.
        self._pending_down = 0.0
        self._pending_up = 0.0
        self._pending_count = 0
        # the pending polls with a rate (not NaN), per direction
        self._pending_measured = [0, 0]
        self._pending_limits = (-math.inf, -math.inf)  # the loosest held so far (looser)
        self._appended = 0
        self._last_held = -FINE_SAMPLES  # the append that last had a limit (NO_LIMITS: none)

    def append(
        self,
        down_bps: float,
        up_bps: float,
        at: float | None = None,
        limits: tuple[float, float] = NO_LIMITS,
    ) -> None:
        """One poll's rates, measured at ``at`` (unix seconds; now if None),
        under ``limits`` (bytes/s held down and up as they were measured: 0 a
        block, NaN none); an hour view's mean is under the loosest of its polls'."""
        at = time.time() if at is None else at
        self._fine.append(down_bps, up_bps, at, limits)
        self._appended += 1
        if limits is not NO_LIMITS:
            self._last_held = self._appended
        # a direction being measured is NaN (applications._append_history): its
        # mean is of the polls that had a rate, NaN where none had
        if down_bps == down_bps:
            self._pending_down += down_bps
            self._pending_measured[0] += 1
        if up_bps == up_bps:
            self._pending_up += up_bps
            self._pending_measured[1] += 1
        self._pending_count += 1
        held = self._pending_limits
        if limits is NO_LIMITS or held is NO_LIMITS:  # most applications: none held, no work
            self._pending_limits = NO_LIMITS
        else:
            self._pending_limits = (looser(held[0], limits[0]), looser(held[1], limits[1]))
        if self._pending_count == COARSE_EVERY:
            down_n, up_n = self._pending_measured
            self._coarse.append(
                self._pending_down / down_n if down_n else math.nan,
                self._pending_up / up_n if up_n else math.nan,
                at,
                self._pending_limits,
            )
            self._pending_down = self._pending_up = 0.0
            self._pending_count = 0
            self._pending_measured = [0, 0]
            self._pending_limits = (-math.inf, -math.inf)

    def recent(self, samples: int) -> FloatArray:
        """The last ``samples`` polls (at most five minutes' worth), shape (n, 2)."""
        return self._fine.last(samples)

    def coarse(self, samples: int = COARSE_SAMPLES) -> FloatArray:
        """Means over COARSE_EVERY polls, for the one-hour view, shape (n, 2)."""
        return self._coarse.last(samples)

    def timed(self, samples: int, coarse: bool = False) -> tuple[FloatArray, FloatArray]:
        """(times, rates) of the last samples: polls, or the hour view's means
        (each at the time of its last poll)."""
        ring = self._coarse if coarse else self._fine
        return ring.last_times(samples), ring.last(samples)

    def held_in_last(self, samples: int) -> bool:
        """Whether any of the last polls came with a limit: most applications'
        sparklines have none to draw, and need not read them (a tenth of a row's paint)."""
        return self._appended - self._last_held < samples

    def limits(self, samples: int, coarse: bool = False) -> FloatArray:
        """The (down, up) limits held at the samples ``timed`` returns (NaN: none)."""
        return (self._coarse if coarse else self._fine).last_limits(samples)

    def mean(self, samples: int, within_s: float | None = None) -> tuple[float, float]:
        """Mean down/up over the last polls: the "measured" rate next to a limit;
        with within_s, only those this close to the last (a gap, the helper away,
        is not averaged across: back after it, a row held at 1 MB/s read "avg
        167 MB/s", the mean of polls from before the gap)."""
        down, up = (self.mean_since(samples, column, 0.0, within_s) for column in (0, 1))
        return (down or 0.0, up or 0.0)

    def mean_since(
        self, samples: int, column: int, since: float, within_s: float | None = None
    ) -> float | None:
        """One direction's (0 down, 1 up) mean over the last polls measured at or
        after since (unix seconds), as mean() takes them; None: no such poll yet
        (just after a limit was set the last five polls were of the seconds
        before it: a 1 MB/s limit read "avg 4.56 MB/s")."""
        recent = self._fine.last(samples)
        times = self._fine.last_times(samples)
        if within_s is not None and len(recent):
            kept = times >= times[-1] - within_s
            recent, times = recent[kept], times[kept]
        values = recent[times >= since, column]
        values = values[~np.isnan(values)]  # polls it was being measured in: no rate
        return float(values.mean()) if len(values) else None

    def __len__(self) -> int:
        return len(self._fine)


class PeakWindow:
    """The highest down and up rate any application had over the last polls.

    One shared scale for every row's sparkline, so rows compare: a per-poll
    maximum kept for ``samples`` polls (a max over rows, then over this ring)
    costs one pass over the poll, not a pass over every row's history.
    """

    def __init__(self, samples: int) -> None:
        self._ring = _Ring(samples)

    def append(self, down_bps: float, up_bps: float) -> None:
        self._ring.append(down_bps, up_bps)

    def peaks(self) -> tuple[float, float]:
        data = self._ring.last(len(self._ring))
        if len(data) == 0:
            return (0.0, 0.0)
        top = data.max(axis=0)
        return (float(top[0]), float(top[1]))
