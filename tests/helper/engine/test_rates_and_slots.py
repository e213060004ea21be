"""Pure pieces of the engine: rate windows and slot allocation."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine import rates
from chadthrottle.helper.engine.api import ADMIN_VIEWER, Viewer
from chadthrottle.helper.engine.limits import SlotAllocator
from chadthrottle.helper.engine.listing import EXITED_VISIBLE_S, build_listing
from chadthrottle.helper.engine.rates import RateMeter
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.identity.applications import AppIdentity
from chadthrottle.helper.identity.index import Application
from chadthrottle.helper.identity.processes import ProcessInfo
from chadthrottle.helper.kernel.layout import HTB_MAJOR

from tests.support.counter_sample import Sample


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


def test_the_first_tick_that_has_an_application_lists_it_measuring_not_at_0() -> None:
    """No earlier reading, no rate: its 0 read as a rate (after every helper
    start, the GUI drew a one-poll drop to nothing: spike34)."""
    meter = RateMeter(window_ticks=2)
    meter.remember(10, "app:a")
    meter.update([Sample(10, 5000, 100)], now=0.0)
    assert meter.apps["app:a"].measuring == set(Direction)
    meter.remember(11, "app:b")
    meter.update([Sample(10, 6000, 200), Sample(11, 70, 0)], now=1.0)
    assert meter.apps["app:a"].measuring == frozenset()
    assert meter.apps["app:a"].down_bps == pytest.approx(1000.0)
    assert meter.apps["app:b"].measuring == set(Direction)  # seen first now
    assert meter.apps["app:b"].down_bps == 0.0


def test_unknown_owners_are_not_attributed_and_shrinking_counters_never_go_negative() -> None:
    meter = RateMeter()
    meter.remember(10, "app:a")
    meter.update([Sample(10, 5000, 0), Sample(0, 99, 99)], now=0.0)
    meter.update([Sample(10, 100, 0)], now=1.0)  # the LRU map evicted and re-created the key
    assert set(meter.apps) == {"app:a"} and meter.apps["app:a"].down_bps == 0.0


def test_loopback_is_counted_apart() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a")
    meter.update([Sample(10, 0, 0, ifindex=1), Sample(10, 0, 0)], now=0.0)
    meter.update([Sample(10, 800, 800, ifindex=1), Sample(10, 100, 0)], now=1.0)
    traffic = meter.apps["app:a"]
    assert (traffic.down_bps, traffic.up_bps) == (100.0, 0.0)
    assert (traffic.loopback_down_bps, traffic.loopback_up_bps) == (800.0, 800.0)
    assert (traffic.rx_bytes, traffic.loopback_rx_bytes) == (100, 800)


def test_exited_applications_stay_listed_a_while_with_their_totals() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:gone")
    meter.update([Sample(10, 0, 0)], now=0.0)
    meter.update([Sample(10, 5000, 0)], now=1.0)  # last movement
    meter.update([Sample(10, 5000, 0)], now=2.0)
    assert meter.apps["app:gone"].down_bps == 0.0  # it stopped: the rate falls to zero
    shown = build_listing({}, meter.apps, {}, now=2.0 + EXITED_VISIBLE_S - 5, viewer=ADMIN_VIEWER)
    assert [(a.id, a.rx_bytes, a.running) for a in shown] == [("app:gone", 5000, False)]
    assert (
        build_listing({}, meter.apps, {}, now=2.0 + EXITED_VISIBLE_S + 5, viewer=ADMIN_VIEWER) == []
    )


def test_exited_processes_keep_their_bytes_but_not_their_pid() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a")
    meter.remember(11, "app:a")
    meter.update([Sample(10, 400, 0), Sample(11, 100, 0)], now=0.0)
    meter.retire({11}, [Sample(11, 100, 0)])  # 11 exited; its counter was removed
    meter.update([Sample(10, 400, 0), Sample(11, 7, 0)], now=1.0)  # 11 reused by someone unknown
    assert meter.apps["app:a"].rx_bytes == 500  # the new owner of pid 11 is not app:a


def test_each_user_of_a_program_several_users_run_is_shown_their_own_share() -> None:
    """Users 1000 and 1001 run app:a: each sees their own processes, bytes and
    rates, exited processes included; root sees the whole; an application one
    user runs alone is shown as it is."""
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a", 1000)
    meter.remember(11, "app:a", 1001)
    meter.remember(12, "app:a", 1001)
    meter.remember(20, "app:b", 1000)
    meter.update([Sample(10, 0, 0), Sample(11, 0, 0), Sample(12, 0, 0), Sample(20, 0, 0)], now=0.0)
    meter.retire({12}, [Sample(12, 300, 0)])  # 1001's second process moved 300 bytes and exited
    meter.update([Sample(10, 100, 0), Sample(11, 0, 40), Sample(20, 5, 0)], now=1.0)
    assert set(meter.by_uid) == {("app:a", 1000), ("app:a", 1001)}  # app:b has one user: no shares
    assert (meter.by_uid[("app:a", 1000)].rx_bytes, meter.by_uid[("app:a", 1000)].down_bps) == (
        100,
        100.0,
    )
    assert (meter.by_uid[("app:a", 1001)].rx_bytes, meter.by_uid[("app:a", 1001)].tx_bytes) == (
        300,
        40,
    )
    running = {
        "app:a": Application(
            AppIdentity("app:a", "A", "", ""), {10: _process(10, 1000), 11: _process(11, 1001)}
        ),
        "app:b": Application(AppIdentity("app:b", "B", "", ""), {20: _process(20, 1000)}),
    }
    rows = {
        a.id: a
        for a in build_listing(
            running, meter.apps, {}, 1.0, Viewer(1000, False), shares=meter.by_uid
        )
    }
    mine = rows["app:a"]
    assert (mine.uids, mine.pids, mine.rx_bytes, mine.tx_bytes) == ((1000,), (10,), 100, 0)
    assert (rows["app:b"].uids, rows["app:b"].rx_bytes) == ((1000,), 5)
    everything = {
        a.id: a
        for a in build_listing(running, meter.apps, {}, 1.0, ADMIN_VIEWER, shares=meter.by_uid)
    }
    whole = everything["app:a"]
    assert (whole.uids, whole.pids, whole.rx_bytes) == ((1000, 1001), (10, 11), 400)


def _process(pid: int, uid: int) -> ProcessInfo:
    return ProcessInfo(pid, 1, uid, "/usr/bin/a", ("/usr/bin/a",), "a", "/")


def test_shaped_uploads_are_measured_at_the_shaper_output() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a")
    meter.update([Sample(10, 0, 0)], now=0.0)
    meter.use_shaped(Direction.UP, {"app:a": 0}, now=0.0)
    meter.update([Sample(10, 0, 4_000_000)], now=1.0)  # TCP filled the queue in a burst
    meter.use_shaped(Direction.UP, {"app:a": 1_000_000}, now=1.0)  # the shaper let 1 MB out
    assert meter.apps["app:a"].up_bps == 1_000_000.0
    assert meter.apps["app:a"].tx_bytes == 4_000_000  # totals stay what the socket sent


def test_limited_downloads_are_measured_at_what_their_limit_let_through() -> None:
    """The counters hold the application's uploads' pure ACKs, which pass a
    download limit uncharged: the listed rate is what the limit let through."""
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a")
    meter.update([Sample(10, 0, 0)], now=0.0)
    meter.use_shaped(Direction.DOWN, {"app:a": 0}, now=0.0)
    meter.update([Sample(10, 3_000_000, 0)], now=1.0)  # data + ACKs of a fast upload
    meter.use_shaped(Direction.DOWN, {"app:a": 100_000}, now=1.0)
    assert meter.apps["app:a"].down_bps == 100_000.0
    assert meter.apps["app:a"].rx_bytes == 3_000_000


def test_interfaces_count_every_socket_attributed_or_not() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(10, "app:a")
    meter.update([Sample(10, 0, 0), Sample(0, 0, 0)], now=0.0)
    meter.update([Sample(10, 100, 0), Sample(0, 900, 50)], now=1.0)  # owner 0: opened before us
    assert (meter.interfaces[(1, 2)].rx_bytes, meter.interfaces[(1, 2)].down_bps) == (1000, 1000.0)
    assert meter.apps["app:a"].rx_bytes == 100


def test_interfaces_of_other_namespaces_stay_apart() -> None:
    """Every namespace numbers its devices from 1: index 2 here is not index 2 there."""
    meter = RateMeter(window_ticks=1)
    meter.update(
        [Sample(10, 100, 10, netns_cookie=1), Sample(11, 5000, 50, netns_cookie=7)], now=0.0
    )
    assert meter.interfaces[(1, 2)].rx_bytes == 100 and meter.interfaces[(7, 2)].rx_bytes == 5000


def test_the_slot_whose_leaf_would_take_the_roots_handle_is_never_handed_out() -> None:
    """A class's leaf is <slot>:0: slot HTB_MAJOR's would be the HTB root's own
    handle, refused by the kernel, so its class could never be made. Slots
    rotate (per-application fair shares take and free one per active
    application), so a long-running helper comes round to it."""
    slots = SlotAllocator()
    while (slot := slots.acquire("passing")) < HTB_MAJOR - 1:
        slots.release("passing")
    taken = [slot] + [slots.acquire(f"app{n}") for n in range(2)]
    assert taken == [HTB_MAJOR - 1, HTB_MAJOR + 1, HTB_MAJOR + 2]


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


def test_bytes_a_socket_moves_after_its_process_exit_was_noticed_count_for_its_application() -> (
    None
):
    """The kernel counts a socket's last packets (queued data, the FIN
    exchange) under its process after the tick that retired it: they are
    retired into its application too (the accounting Burst flake, 52 bytes
    each way on the interface only)."""
    meter = RateMeter(window_ticks=1, owner=lambda sample: sample.owner_tgid)
    meter.remember(11, "app:a", 1000)
    meter.update([Sample(11, 100, 200, owner_start=7)], now=0.0)
    meter.retire({11}, [Sample(11, 100, 200, owner_start=7)])
    assert 11 in meter.exited_owners() and meter.owner_of(Sample(11, 0, 0, owner_start=7)) == (
        "app:a",
        1000,
    )
    meter.retire(
        set(), [Sample(11, 52, 52, owner_start=7)]
    )  # counted again under 11, retired again
    meter.update([], now=1.0)
    assert (meter.apps["app:a"].rx_bytes, meter.apps["app:a"].tx_bytes) == (152, 252)
    assert meter.interfaces[(1, 2)].rx_bytes == 152
    meter.remember(11, "app:b")  # a pid read with no start, running again: not the exited one
    assert 11 not in meter.exited_owners()


def test_exited_owners_are_kept_a_while_and_a_bounded_number() -> None:
    meter = RateMeter(window_ticks=1, owner=lambda sample: sample.owner_tgid)
    for owner in range(1, rates.EXITED_OWNERS_KEPT + 11):
        meter.remember(owner, "app:a")
    meter.retire(set(range(1, rates.EXITED_OWNERS_KEPT + 11)), [])
    assert set(meter.exited_owners()) == set(range(11, rates.EXITED_OWNERS_KEPT + 11))
    for _ in range(rates.EXITED_OWNERS_KEPT_TICKS - 2):
        meter.retire(set(), [])
    meter.retire(set(), [Sample(20, 1, 1, owner_start=7)])  # counted late: kept from this tick on
    meter.retire(set(), [])
    assert set(meter.exited_owners()) == {20}


def test_a_change_between_a_ticks_counter_read_and_its_count_stays_measuring_until_the_next() -> (
    None
):
    """The tick reads the counters and its clock, lets go of the lock while it
    follows exits, and counts after: a rule change in between restarts the
    window at a time after the tick's. That tick must not list the old
    window's rate for the changed direction (nor a rate over a negative
    time): it stays measuring, and the next tick measures from the change."""
    meter = RateMeter(window_ticks=2)
    meter.remember(10, "app:a")
    for second in range(3):
        meter.update([Sample(10, second * 1000, second * 500)], now=float(second))
    meter.restart([("app:a", Direction.DOWN)], [Sample(10, 3100, 1550)], now=3.05)
    assert meter.apps["app:a"].measuring == {Direction.DOWN}
    assert (meter.apps["app:a"].down_bps, meter.apps["app:a"].up_bps) == (0.0, 500.0)
    meter.update([Sample(10, 3000, 1500)], now=3.0)  # read before the change, counted after it
    assert meter.apps["app:a"].measuring == {Direction.DOWN}
    assert meter.apps["app:a"].down_bps == 0.0
    assert meter.apps["app:a"].up_bps == pytest.approx(500.0)  # its window: not restarted
    meter.update([Sample(10, 3100 + 950, 2000)], now=4.0)
    assert meter.apps["app:a"].measuring == frozenset()
    assert meter.apps["app:a"].down_bps == pytest.approx(950 / 0.95)  # from the change on
    assert meter.apps["app:a"].up_bps == pytest.approx((2000 - 1000) / 2)
