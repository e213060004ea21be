"""The usage feed: per-tick bytes per (application, uid) from monotonic counters."""

from __future__ import annotations

from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX, RateMeter
from chadthrottle.helper.usage.feed import UNKNOWN_UID, UsageFeed

from tests.support.counter_sample import Sample


def _meter(*owners: tuple[int, str, int | None]) -> RateMeter:
    meter = RateMeter()
    for tgid, app_id, uid in owners:
        meter.remember(tgid, app_id, uid)
    return meter


def test_each_tick_counts_what_moved_since_the_last_per_application_and_uid() -> None:
    meter = _meter((10, "exe:/a", 1000), (11, "exe:/a", 1001), (12, "exe:/b", 1000))
    feed = UsageFeed()
    first = feed.update([Sample(10, 100, 10), Sample(11, 50, 0), Sample(12, 0, 7)], meter.owner_of)
    assert first == {
        ("exe:/a", 1000): [100, 10, 0, 0],
        ("exe:/a", 1001): [50, 0, 0, 0],
        ("exe:/b", 1000): [0, 7, 0, 0],
    }
    second = feed.update([Sample(10, 160, 10), Sample(11, 50, 0), Sample(12, 0, 9)], meter.owner_of)
    assert second == {("exe:/a", 1000): [60, 0, 0, 0], ("exe:/b", 1000): [0, 2, 0, 0]}


def test_loopback_is_kept_apart_and_each_interface_counts_on_its_own() -> None:
    meter = _meter((10, "exe:/a", 0))
    feed = UsageFeed()
    feed.update([Sample(10, 100, 100), Sample(10, 5, 5, ifindex=LOOPBACK_IFINDEX)], meter.owner_of)
    moved = feed.update(
        [Sample(10, 130, 100), Sample(10, 25, 45, ifindex=LOOPBACK_IFINDEX)], meter.owner_of
    )
    assert moved == {("exe:/a", 0): [30, 0, 20, 40]}


def test_an_exited_process_counts_its_last_bytes_once_and_a_reused_pid_from_zero() -> None:
    meter = _meter((10, "exe:/a", 1000))
    feed = UsageFeed()
    feed.update([Sample(10, 100, 0)], meter.owner_of)
    assert feed.retire([Sample(10, 150, 0)], meter.owner_of) == {("exe:/a", 1000): [50, 0, 0, 0]}
    meter.retire({10}, [])
    meter.remember(
        10, "exe:/b", 1001
    )  # the pid again, another program: its counter starts from zero
    assert feed.update([Sample(10, 30, 0)], meter.owner_of) == {("exe:/b", 1001): [30, 0, 0, 0]}


def test_an_owner_not_known_yet_is_counted_whole_once_known_and_a_shrunk_counter_from_zero() -> (
    None
):
    meter = RateMeter()
    feed = UsageFeed()
    assert feed.update([Sample(10, 100, 0)], meter.owner_of) == {}
    meter.remember(10, "exe:/a")  # its user could not be read
    assert feed.update([Sample(10, 120, 0)], meter.owner_of) == {
        ("exe:/a", UNKNOWN_UID): [120, 0, 0, 0]
    }
    assert feed.update([Sample(10, 20, 0)], meter.owner_of) == {
        ("exe:/a", UNKNOWN_UID): [20, 0, 0, 0]
    }


def test_the_sum_of_the_ticks_is_the_counters_total_exactly() -> None:
    meter = _meter((10, "exe:/a", 0), (11, "exe:/a", 0))
    feed = UsageFeed()
    total = [0, 0, 0, 0]
    counters = {10: 0, 11: 0}
    for tick in range(1, 200):
        counters[10] += tick * 1448
        counters[11] += 7 if tick % 3 else 0
        for counts in feed.update(
            [Sample(10, counters[10], 1), Sample(11, counters[11], 2)], meter.owner_of
        ).values():
            total = [a + b for a, b in zip(total, counts, strict=True)]
    assert total == [counters[10] + counters[11], 3, 0, 0]


def test_forgotten_counters_do_not_stay_in_memory() -> None:
    meter = _meter(*((tgid, "exe:/a", 0) for tgid in range(1000)))
    feed = UsageFeed()
    feed.update([Sample(tgid, 1, 1) for tgid in range(1000)], meter.owner_of)
    feed.update([Sample(1, 2, 2)], meter.owner_of)
    assert len(feed._last) == 1
