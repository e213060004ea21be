"""What the ebpf backend's policer of one slot and direction let pass, dropped
and marked: its counters in the policers array (bpf/policer.h), read through
the datapath as the backend itself reads them. For tests and benchmarks; the
product reports rates from the socket counters, not these."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.layout import POLICE_DOWN, POLICE_UP, SlotPolicer, policer_key
from chadthrottle.helper.kernel.policer import PolicerTable


def policer_counters(table: PolicerTable, slot: int, direction: Direction) -> SlotPolicer:
    """The policer entry (passed_bytes, dropped_packets, marked_packets, ...) of slot and direction."""
    return table.read_policer(
        policer_key(slot, POLICE_UP if direction is Direction.UP else POLICE_DOWN)
    )
