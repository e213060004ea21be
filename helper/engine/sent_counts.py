"""One count per slot of what its limit let through, that moves on smoothly
when the counter it is read from changes.

A limited application's listed rate is read from the counter of whatever
holds it: the tc class (the sum over every namespace's class), or the
policer's where tc does not shape that slot (an uplink policed, not shaped).
Those counters are unrelated totals: at a switch from the class to the
policer the rate read the policer's whole total minus the class's, in one
tick (a spike of many times the limit), and a class made again, or a
namespace whose shaper went, read as a count going back. So each slot's
count goes on from where it was, by the bytes moved since the last read as
counted by a source that counted both times (the guard counts every limited
slot), and by the new source's own count where none did (a class made in
the meantime counted from zero). Pure: fed the readings each tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Readings = Mapping[str, int]  # source ("tc", "guard", ...) -> its count of one slot now


@dataclass(frozen=True)
class _Read:
    source: str
    readings: dict[str, int]
    count: int  # the continuous count given then


def moved_since(source: str, then: _Read, now: Readings) -> int:
    """Bytes since the last read: by the source chosen now, or else the one
    chosen then, or else any other, whichever counted both times without
    going back; else the chosen source's own count (it started meanwhile)."""
    for candidate in dict.fromkeys((source, then.source, *sorted(now))):
        before, after = then.readings.get(candidate), now.get(candidate)
        if before is not None and after is not None and after >= before:
            return after - before
    return now[source]


class ContinuousCounts:
    """Per slot, a count that only grows, whatever source it is read from."""

    def __init__(self) -> None:
        self._last: dict[int, _Read] = {}

    def read(self, readings: Mapping[int, Readings], chosen: Mapping[int, str]) -> dict[int, int]:
        """slot -> its count now, from readings (slot -> every source's count
        of it) and chosen (slot -> the source that holds it now). A slot read
        for the first time starts at its chosen source's count; one not chosen
        any more is forgotten."""
        last: dict[int, _Read] = {}
        for slot, source in chosen.items():
            now = readings[slot]
            then = self._last.get(slot)
            count = now[source] if then is None else then.count + moved_since(source, then, now)
            last[slot] = _Read(source, dict(now), count)
        self._last = last
        return {slot: read.count for slot, read in last.items()}
