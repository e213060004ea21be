"""Tags after a clsact's graft dropped packets wait for the processes' sent
data to be acknowledged, for a few of their sockets' round trips and never
longer than GRAFT_WAIT_MAX_S, held back rather than waited for in the call
(the engine's waiter thread tags them; the real kernel path:
tests/e2e/test_first_upload_limit_graft.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.kernel_hold import (
    GRAFT_WAIT_MAX_S,
    GRAFT_WAIT_RTTS,
    GRAFT_WAIT_SLACK_S,
    KernelHold,
    graft_wait_s,
)

from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper
from tests.helper.engine.test_engine_plan import World
from tests.support.waiting import eventually


@dataclass
class UnackedDatapath(RecordingDatapath):
    """Answers sends_unacked from a script: per pid, how many polls its marks
    stay unacknowledged (None: forever)."""

    unacked_polls: dict[int, int | None] = field(default_factory=dict)
    asked: list[tuple[int, bool]] = field(default_factory=list)  # (pid, with marks)
    rtt_us: int = 40_000  # the sockets' smoothed round trip

    def sends_unacked(
        self, tgid: int, marks: Mapping[int, int] | None = None
    ) -> dict[int, int] | None:
        self.asked.append((tgid, marks is not None))
        polls = self.unacked_polls.get(tgid, 0)
        if polls is not None and polls <= 0:
            return {}
        if polls is not None:
            self.unacked_polls[tgid] = polls - 1
        return {1: 1000}

    def sends_rtt_us(self, tgid: int, marks: Mapping[int, int]) -> int:
        return self.rtt_us


@dataclass
class GraftingShaper(RecordingShaper):
    grafts: int = 0

    def lossy_grafts(self) -> int:
        grafts, self.grafts = self.grafts, 0
        return grafts


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _hold(datapath: UnackedDatapath, grafts: int) -> tuple[KernelHold, Clock]:
    clock = Clock()
    hold = KernelHold(datapath, GraftingShaper(grafts=grafts), clock=clock)
    hold.classes({}, {})
    return hold, clock


def test_a_process_is_held_back_until_what_it_sent_is_acknowledged() -> None:
    datapath = UnackedDatapath(unacked_polls={7: 3, 8: 0})
    hold, _clock = _hold(datapath, grafts=1)
    hold.tags({7: 2, 8: 2}, {}, {7, 8})
    assert datapath.process_slots == {8: 2}  # nothing unacknowledged: tagged at once
    assert set(hold.graft_waits()) == {7}
    hold.tags({7: 2, 8: 2}, {}, {7, 8})  # a tick meanwhile: still held back
    assert 7 not in datapath.process_slots
    hold.graft_done([7])  # the waiter saw it acknowledged
    hold.tags({7: 2, 8: 2}, {}, {7, 8})
    assert datapath.process_slots == {7: 2, 8: 2} and hold.graft_waits() == {}


def test_the_wait_is_a_few_round_trips_and_bounded() -> None:
    assert graft_wait_s(40_000) == pytest.approx(GRAFT_WAIT_RTTS * 0.04 + GRAFT_WAIT_SLACK_S)
    assert graft_wait_s(150_000) == pytest.approx(GRAFT_WAIT_RTTS * 0.15 + GRAFT_WAIT_SLACK_S)
    assert graft_wait_s(0) == GRAFT_WAIT_SLACK_S
    assert graft_wait_s(10_000_000) == GRAFT_WAIT_MAX_S
    datapath = UnackedDatapath(unacked_polls={7: None}, rtt_us=150_000)
    hold, clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    assert hold.graft_wait_left_s() == graft_wait_s(150_000)
    clock.now += graft_wait_s(150_000) - 0.001
    hold.tags({7: 2}, {}, {7})
    assert datapath.process_slots == {}
    clock.now += 0.001
    hold.tags({7: 2}, {}, {7})
    assert datapath.process_slots == {7: 2}  # tagged all the same: fail open


def test_the_wait_outlasts_the_repair_of_a_whole_window_lost_at_the_graft() -> None:
    # measured (docs/development.md, "Fifteenth round"): 220 segments sent into the noop
    # qdisc at the graft, on a 150 ms path (srtt about 155 ms), were all acknowledged
    # 0.762 s after the call; 3 round trips + 20 ms (0.485 s) tagged the sender mid-repair
    assert graft_wait_s(155_000) >= 0.762


def test_a_wait_ends_with_its_rule() -> None:
    datapath = UnackedDatapath(unacked_polls={7: None})
    hold, _clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    hold.tags({}, {}, {7})  # the limit cleared meanwhile
    assert hold.graft_waits() == {} and datapath.process_slots == {}
    hold.tags({7: 3}, {}, {7})  # limited again, no graft since: tagged at once
    assert datapath.process_slots == {7: 3}


def test_no_wait_without_a_lossy_graft_or_for_processes_tagged_already() -> None:
    datapath = UnackedDatapath(unacked_polls={7: None, 8: None})
    hold, _clock = _hold(datapath, grafts=0)
    hold.tags({7: 2}, {}, {7})
    assert datapath.asked == [] and datapath.process_slots == {7: 2}
    hold, _clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    hold.graft_done([7])
    hold.tags({7: 2}, {}, {7})
    datapath.asked.clear()
    hold.classes({}, {})
    hold.tags({7: 2, 8: 2}, {}, {7, 8})  # no graft since: the next tags do not wait
    assert datapath.asked == [] and hold.graft_waits() == {}


def test_the_engine_tags_a_held_back_process_off_its_lock_once_acknowledged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit call returns without waiting, other calls are answered while
    the process is held back, and it is tagged once its data is acknowledged
    (the wait's bound made long here: only the acknowledgement can end it)."""
    acknowledged = threading.Event()
    setattr(world.datapath, "sends_unacked",  # noqa: B010
            lambda tgid, marks=None: {} if acknowledged.is_set() else {1: 1000})  # fmt: skip
    setattr(world.datapath, "sends_rtt_us", lambda tgid, marks: 40_000)  # noqa: B010
    setattr(world.shaper, "lossy_grafts", lambda: 1)  # noqa: B010
    monkeypatch.setattr("chadthrottle.helper.engine.kernel_hold.graft_wait_s", lambda rtt_us: 30.0)
    world.while_asleep = lambda: time.sleep(0.001)  # the waiter's polls: real time here
    world.spawn(10)
    world.engine.tick()
    world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    assert 10 not in world.datapath.process_slots, "tagged before its data was acknowledged"
    listing = threading.Thread(target=world.engine.list_applications)
    listing.start()
    listing.join(timeout=5.0)
    assert not listing.is_alive(), "a listing waited for the held-back process"
    world.engine.tick()  # a tick meanwhile does not tag it either
    assert 10 not in world.datapath.process_slots
    acknowledged.set()
    assert eventually(lambda: 10 in world.datapath.process_slots, 5.0), "never tagged"


def test_a_waiter_off_the_lock_tags_nothing_once_the_engine_stops(world: World) -> None:
    """close() stops the waits (stop_graft_waits), then lifts the socket caps
    and detaches: a waiter that was polling the sockets off the lock must not
    tag the held-back process after that (its caps would be set on the
    application's sockets after close lifted them, and stay after the helper
    stopped). Before, it tagged once its poll returned."""
    polling, answer = threading.Event(), threading.Event()

    def sends_unacked(tgid: int, marks: Mapping[int, int] | None = None) -> dict[int, int]:
        if marks is None:
            return {1: 1000}  # held back
        polling.set()
        answer.wait(5.0)
        return {}  # acknowledged

    setattr(world.datapath, "sends_unacked", sends_unacked)  # noqa: B010
    setattr(world.datapath, "sends_rtt_us", lambda tgid, marks: 40_000)  # noqa: B010
    setattr(world.shaper, "lossy_grafts", lambda: 1)  # noqa: B010
    world.while_asleep = lambda: time.sleep(0.001)
    world.spawn(10)
    world.engine.tick()
    world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)
    assert polling.wait(5.0), "the waiter never polled"
    world.engine.stop_graft_waits()
    answer.set()
    waiter = world.engine._graft_waiter
    if waiter is not None:
        waiter.join(5.0)
    assert 10 not in world.datapath.process_slots, "tagged after the engine stopped its waits"
