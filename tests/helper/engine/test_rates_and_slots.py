"""Pure pieces of the engine: rate windows and slot allocation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chadthrottle.helper.engine.limits import SlotAllocator
from chadthrottle.helper.engine.rates import RateMeter
from chadthrottle.helper.errors import InvalidArgument


@dataclass(frozen=True)
class Sample:
    owner_tgid: int
    rx_bytes: int
    tx_bytes: int


def test_rates_come_from_counter_deltas_over_the_window() -> None:
    meter = RateMeter(window_ticks=2)
    meter.remember(10, "app:a")
    meter.remember(11, "app:a")
    meter.update([Sample(10, 0, 0)], now=0.0)
    meter.update([Sample(10, 1000, 0), Sample(11, 0, 500)], now=1.0)
    assert meter.apps["app:a"].down_bps == pytest.approx(1000.0)
    meter.update([Sample(10, 3000, 0), Sample(11, 0, 2500)], now=2.0)
    assert meter.apps["app:a"].down_bps == pytest.approx(1500.0)  # (3000 - 0) / 2 s
    assert meter.apps["app:a"].tx_bytes == 2500


def test_unknown_owners_are_not_attributed_and_shrinking_counters_never_go_negative() -> None:
    meter = RateMeter()
    meter.remember(10, "app:a")
    meter.update([Sample(10, 5000, 0), Sample(0, 99, 99)], now=0.0)
    meter.update([Sample(10, 100, 0)], now=1.0)  # the LRU map evicted and re-created the key
    assert set(meter.apps) == {"app:a"} and meter.apps["app:a"].down_bps == 0.0


def test_slots_rotate_and_are_never_shared() -> None:
    slots = SlotAllocator(max_slots=3)
    a, b = slots.acquire("a"), slots.acquire("b")
    assert a != b and slots.acquire("a") == a
    slots.release("a")
    c = slots.acquire("c")
    assert c not in (a, b)  # a freed slot is not handed out again at once
    assert slots.acquire("d") == a  # ...only after the rotation came round
    with pytest.raises(InvalidArgument):
        slots.acquire("e")
