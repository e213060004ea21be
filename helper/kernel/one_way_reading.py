"""What the helper's one-way reading of the upload's queue beyond our shaper
gives the capacity estimator at each look (issue 16).

A far end's TCP ACK carries its timestamp (TSval, its clock, stamped when the
ACK leaves it); the segment the ACK acknowledges left our upload shaper at a
time we note. Their difference, over the connection's own least of the last
seconds (the clocks' offset cancels), grows with every queue between our
shaper and the far end's stack: the modem's upload queue above all, and not
the ACK's way back (the modem's download queue), which the round trips carry.
So a raise of the upload past the link can be told within a few tenths of a
second, by the upload's queue alone (docs/benchmarks/priorities.md, owd28).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UploadQueueReading:
    """The least reading over the read connections since the last look (the
    oldest ones: one_way.py says which).

    queue_ms: milliseconds above each connection's floor (the far clock's 1 ms
    tick is its step); None when no ACK was read since the last look (no
    information, not an empty queue). readings: the most ACKs one of those
    connections gave (the least is no higher than that one's least): a look of
    one or two ACKs can be a delayed ACK's, 40 ms high. Until 2026-12-07 (review32)
    the ACKs of all connections summed: three with one delayed ACK each made three.
    """

    queue_ms: float | None
    readings: int
