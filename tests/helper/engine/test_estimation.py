"""The helper's estimation loop follows the stored setting: off, it makes
nothing and hands nothing over; a new setting starts afresh from its
values. (Its estimate against a real modem: tests/helper/kernel/test_path_delay.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chadthrottle.contract import Direction, LinkShapingInfo
from chadthrottle.helper.engine import estimation as module
from chadthrottle.helper.engine.capacity_estimate import CapacityEstimator, Sample
from chadthrottle.helper.engine.estimation import LinkEstimation, nic_ceiling
from chadthrottle.helper.kernel.path_delay import LinkCounters
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE
from pyroute2.netlink.exceptions import NetlinkError


class Engine:
    def __init__(self, shaping: LinkShapingInfo) -> None:
        self.shaping, self.handed = shaping, list[tuple[Direction, int | None]]()

    def link_shaping(self) -> LinkShapingInfo:
        return self.shaping

    def set_estimated_capacity(self, direction: Direction, bps: int | None) -> None:
        self.handed.append((direction, bps))


class NoLinks:
    """An IPRoute of a namespace without uplinks or IFBs."""

    closed = False

    def get_links(self, *_: Any) -> list[Any]:
        return []

    def route(self, *_: Any, **__: Any) -> list[Any]:
        raise NetlinkError(101, "Network is unreachable")  # as the kernel answers without a route

    def close(self) -> None:
        self.closed = True


def test_off_it_makes_nothing_and_a_new_setting_starts_afresh() -> None:
    made: list[NoLinks] = []

    def make() -> NoLinks:
        made.append(NoLinks())
        return made[-1]

    estimation = LinkEstimation(make_ipr=make)
    engine = Engine(LinkShapingInfo(down_set_bps=1_000_000, up_set_bps=200_000))
    estimation.tick(engine)
    assert made == [] and engine.handed == []
    engine.shaping = LinkShapingInfo(down_set_bps=1_000_000, up_set_bps=200_000, estimate=True)
    for _ in range(3):  # no traffic here: the estimate holds the values set
        estimation.tick(engine)
    assert estimation._estimator is not None
    assert estimation._estimator.capacities() == {Direction.DOWN: 1_000_000, Direction.UP: 200_000}
    engine.shaping = LinkShapingInfo(up_set_bps=300_000, estimate=True)
    estimation.tick(engine)
    assert estimation._estimator.capacities() == {Direction.DOWN: None, Direction.UP: 300_000}
    assert engine.handed == [] and len(made) == 1
    estimation.close()
    assert made[0].closed


class OneLink:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_links(self, *index: int) -> list[Any]:
        return [Link(self.name)]


class Link(dict):  # type: ignore[type-arg]
    def __init__(self, name: str) -> None:
        super().__init__(index=3, flags=0x1, ifi_type=1)
        self.name = name

    def get_attr(self, key: str) -> Any:
        return {"IFLA_IFNAME": self.name, "IFLA_STATS64": {"rx_bytes": 0, "rx_packets": 0, "tx_bytes": 0,
                                                            "tx_packets": 0}}.get(key)  # fmt: skip


def test_the_nic_speed_bounds_the_estimate_only_for_the_namespaces_own_link(tmp_path: Path) -> None:
    (tmp_path / "eth9").mkdir()
    (tmp_path / "eth9" / "ifindex").write_text("3\n")
    (tmp_path / "eth9" / "speed").write_text("1000\n")
    assert nic_ceiling(OneLink("eth9"), tmp_path) == 125_000_000
    (tmp_path / "eth9" / "ifindex").write_text("4\n")  # another namespace's eth9
    assert nic_ceiling(OneLink("eth9"), tmp_path) is None
    assert nic_ceiling(OneLink("veth0"), tmp_path) is None


def started_estimation(start_s: float) -> tuple[LinkEstimation, Engine]:
    """A LinkEstimation on a clock 0.1 s later at each read, started afresh
    (one tick) from 2.5 MB/s down and 625 kB/s up set to be estimated."""
    now = [start_s]

    def clock() -> float:
        now[0] += 0.1
        return now[0]

    estimation = LinkEstimation(monotonic=clock, make_ipr=NoLinks)
    engine = Engine(LinkShapingInfo(down_set_bps=2_500_000, up_set_bps=625_000, estimate=True))
    estimation.tick(engine)
    return estimation, engine


def raised_estimation(start_s: float) -> tuple[LinkEstimation, Engine, CapacityEstimator]:
    """started_estimation with the download loaded (its acknowledgements up)
    until the estimator raises it: a raise being judged."""
    estimation, engine = started_estimation(start_s)
    estimator = estimation._estimator
    assert estimator is not None and not estimation.glancing()
    for _ in range(30):
        down = estimator.capacity(Direction.DOWN) or 0
        loaded = {
            Direction.DOWN: int(down * SHAPE_SHARE),
            Direction.UP: int(down * SHAPE_SHARE) // 30,
        }
        estimator.update(Sample(1.0, loaded, 0.001))
        if (estimator.capacity(Direction.DOWN) or 0) > down:
            break
    return estimation, engine, estimator


def test_a_glance_hands_a_download_step_past_the_link_back_to_the_engine(monkeypatch: Any) -> None:
    """While a download raise is judged the engine's loop glances (glancing): our queues'
    waits only, and a download queue falling steadily takes the raise back now, handed to
    the engine as a tick's estimate is (capacity_estimate.GLANCE_FALLS)."""
    estimation, engine, estimator = raised_estimation(0.0)
    raised = estimator.capacity(Direction.DOWN) or 0
    assert estimation.glancing()
    waits = iter([0.100, 0.098, 0.096, 0.094])  # 2% of the rate a tenth of a second: to the modem
    monkeypatch.setattr(
        module,
        "shaper_wait_s",
        lambda _ipr, _shaping: {Direction.DOWN: next(waits), Direction.UP: 0.2},
    )
    for _ in range(4):
        estimation.glance(engine)
    assert len(engine.handed) == 1 and engine.handed[0][0] is Direction.DOWN
    assert (engine.handed[0][1] or 0) < raised and not estimation.glancing()


def test_a_glance_hands_the_estimator_the_bytes_since_the_last_look(monkeypatch: Any) -> None:
    """A fall of our download queue is judged with what passed since the raise
    (capacity_estimate._raise_kept_up), so each glance hands over the links' bytes since the
    last tick or glance: the internet's links only (as a tick's), a link new since the last
    look moving nothing."""
    now = {3: LinkCounters(1_000, 100), 7: LinkCounters(5, 5)}
    monkeypatch.setattr(module, "link_counters", lambda _ipr: dict(now))
    monkeypatch.setattr(module, "internet_links", lambda _ipr: {3, 4})
    monkeypatch.setattr(
        module, "shaper_wait_s", lambda *_: {Direction.DOWN: 0.1, Direction.UP: 0.2}
    )
    estimation, engine = started_estimation(0.0)
    estimator = estimation._estimator
    assert estimator is not None
    now.update({3: LinkCounters(2_000, 150), 7: LinkCounters(9, 9)})
    estimation.tick(engine)
    handed: list[object] = []
    before = estimator.capacities()

    def glance(*_: Any, passed: object = None, **__: Any) -> object:
        handed.append(passed)
        return before

    monkeypatch.setattr(estimator, "glance", glance)
    now.update({3: LinkCounters(2_500, 170), 7: LinkCounters(99, 99)})  # 7: not the internet's
    estimation.glance(engine)
    now.update({3: LinkCounters(2_600, 171), 4: LinkCounters(7_000, 7_000)})  # 4: new
    estimation.glance(engine)
    assert handed == [
        {Direction.DOWN: 500, Direction.UP: 20},
        {Direction.DOWN: 100, Direction.UP: 1},
    ]
