"""Per-process rates (ListProcesses) from the samples the applications' rates
use: an application's rate is its living processes' summed."""

from __future__ import annotations

import pytest
from chadthrottle.helper.engine.observed import process_rows
from chadthrottle.helper.engine.rates import RateMeter
from chadthrottle.helper.kernel.layout import owner_key
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.counter_sample import Sample

# Per tick, per process (tgid 10.. of one application), the bytes each of its
# keys (interface 1 = loopback, 2, 3) moved in and out; a process born later
# has no key before its first tick.
_moves = st.lists(st.integers(0, 10**7), min_size=6, max_size=6)
_ticks = st.lists(st.lists(_moves, min_size=3, max_size=3), min_size=2, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    ticks=_ticks,
    births=st.lists(st.integers(0, 5), min_size=3, max_size=3),
    window=st.integers(1, 3),
)
def test_an_applications_rate_is_its_processes_rates_summed(
    ticks: list[list[list[int]]], births: list[int], window: int
) -> None:
    meter = RateMeter(window_ticks=window)
    tgids = (10, 11, 12)
    for tgid in tgids:
        meter.remember(tgid, "app:a")
    born = dict(zip(tgids, births, strict=True))  # the application is born with its first
    counts: dict[tuple[int, int], list[int]] = {}
    for tick, moves in enumerate(ticks):
        samples = []
        for tgid, moved in zip(tgids, moves, strict=True):
            if tick < born[tgid]:
                continue
            for ifindex in (1, 2, 3):
                count = counts.setdefault((tgid, ifindex), [0, 0])
                count[0] += moved[2 * (ifindex - 1)]
                count[1] += moved[2 * (ifindex - 1) + 1]
                samples.append(Sample(tgid, count[0], count[1], ifindex=ifindex))
        meter.update(samples, now=float(tick))
    if "app:a" not in meter.apps:
        assert all(t.rx_bytes == 0 for t in meter.process_traffic("app:a", tgids).values())
        return  # every process is born after the last tick
    app = meter.apps["app:a"]
    processes = meter.process_traffic("app:a", tgids).values()
    assert sum(p.down_bps for p in processes) == pytest.approx(app.down_bps)
    assert sum(p.up_bps for p in processes) == pytest.approx(app.up_bps)
    assert sum(p.loopback_down_bps for p in processes) == pytest.approx(app.loopback_down_bps)
    assert sum(p.loopback_up_bps for p in processes) == pytest.approx(app.loopback_up_bps)
    assert sum(p.rx_bytes for p in processes) == app.rx_bytes
    assert sum(p.tx_bytes for p in processes) == app.tx_bytes


def test_each_process_has_its_own_rate_and_an_exited_ones_bytes_stay_with_the_application() -> None:
    meter = RateMeter(window_ticks=2)
    for tgid in (10, 11, 12):
        meter.remember(tgid, "app:a")
    meter.update([Sample(10, 0, 0), Sample(11, 0, 0), Sample(12, 0, 0)], now=0.0)
    meter.update([Sample(10, 1000, 10), Sample(11, 4000, 0), Sample(12, 600, 0)], now=1.0)
    meter.retire({12}, [Sample(12, 600, 0)])  # 12 exited after moving 600 bytes
    meter.update([Sample(10, 2000, 20), Sample(11, 8000, 0)], now=2.0)
    traffic = meter.process_traffic("app:a", [10, 11, 99])  # 99: a process with no counters yet
    assert (traffic[10].down_bps, traffic[10].up_bps, traffic[10].rx_bytes) == (1000.0, 10.0, 2000)
    assert (traffic[11].down_bps, traffic[11].rx_bytes) == (4000.0, 8000)
    assert (traffic[99].down_bps, traffic[99].rx_bytes) == (0.0, 0)
    # The application's rate also holds what 12 moved in the window, 300 B/s.
    assert meter.apps["app:a"].down_bps == pytest.approx(1000.0 + 4000.0 + 300.0)


def test_one_tick_gives_totals_and_no_rates_yet() -> None:
    meter = RateMeter()
    assert meter.process_traffic("app:a", [10])[10].rx_bytes == 0  # nothing read yet
    meter.remember(10, "app:a")
    meter.update([Sample(10, 500, 7)], now=0.0)
    traffic = meter.process_traffic("app:a", [10])[10]
    assert (traffic.rx_bytes, traffic.tx_bytes, traffic.down_bps) == (500, 7, 0.0)


def test_process_rows_are_by_pid_with_names_escaped_for_the_bus() -> None:
    meter = RateMeter(window_ticks=1)
    meter.remember(7, "app:a")
    meter.update([Sample(7, 0, 0)], now=0.0)
    meter.update([Sample(7, 100, 50)], now=1.0)
    rows = process_rows({9: "idle", 7: "bad\nname"}, meter.process_traffic("app:a", [7, 9]))
    assert [(r.pid, r.name, r.down_bps, r.up_bps, r.rx_bytes) for r in rows] == [
        (7, "bad\\x0aname", 100.0, 50.0, 100),
        (9, "idle", 0.0, 0.0, 0),
    ]


def test_the_engine_lists_a_users_own_processes_with_rates_adding_to_the_applications(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Engine.list_processes on the engine's own ticks: two users' processes of
    one program; each user sees only their own, and all of them add up to the
    application's rate an administrator sees."""
    from chadthrottle.helper.identity.processes import ProcessInfo

    from tests.helper.engine.test_engine_plan import Traffic, World

    now = [0.0]
    world = World(clock=lambda: now[0])
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", world.processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", world.processes.__contains__
    )
    for pid, uid in ((10, 1000), (11, 1001)):
        world.processes[pid] = ProcessInfo(pid, 1, uid, "/usr/bin/curl", ("curl",), "curl", "/")
    for second in range(4):
        now[0] = float(second)
        world.datapath.traffic = [Traffic(10, 1000 * second, 10 * second),
                                  Traffic(11, 3000 * second, 0)]  # fmt: skip
        world.engine.tick()
    everyone = world.engine.list_processes("exe:/usr/bin/curl")
    assert [(p.pid, p.name, p.down_bps, p.up_bps) for p in everyone] == [
        (10, "curl", 1000.0, 10.0),
        (11, "curl", 3000.0, 0.0),
    ]
    (app,) = world.engine.list_applications()
    assert sum(p.down_bps for p in everyone) == pytest.approx(app.down_bps)
    assert [p.pid for p in world.engine.list_processes("exe:/usr/bin/curl", 1001)] == [11]
    assert world.engine.list_processes("exe:/no/such") == []


def test_a_new_process_under_an_old_pid_has_its_own_rate() -> None:
    """Owners are processes (owner_key: pid and start): the old process's
    counters in the window are not the new one's starting point."""
    meter = RateMeter(window_ticks=2)
    old, new = owner_key(10, 500), owner_key(10, 900)
    meter.remember(old, "app:a")
    meter.update([Sample(10, 6000, 0, owner_start=500)], now=0.0)
    meter.remember(new, "app:a")
    meter.update(
        [Sample(10, 6000, 0, owner_start=500), Sample(10, 1000, 0, owner_start=900)], now=1.0
    )
    meter.retire({old}, [Sample(10, 6000, 0, owner_start=500)])
    meter.update([Sample(10, 3000, 0, owner_start=900)], now=2.0)
    traffic = meter.process_traffic("app:a", [new])[new]
    assert (traffic.rx_bytes, traffic.down_bps) == (
        3000,
        1500.0,
    )  # from zero at 0.0: it had no counter
