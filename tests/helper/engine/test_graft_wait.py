"""Tags after a clsact's graft dropped packets wait for the processes' sent
data to be acknowledged, and never longer than GRAFT_WAIT_MAX_S (the real
kernel path: tests/e2e/test_first_upload_limit_graft.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chadthrottle.helper.engine.kernel_hold import GRAFT_WAIT_MAX_S, KernelHold

from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper


@dataclass
class UnackedDatapath(RecordingDatapath):
    """Answers sends_unacked from a script: per pid, how many polls its marks
    stay unacknowledged (None: forever)."""

    unacked_polls: dict[int, int | None] = field(default_factory=dict)
    asked: list[tuple[int, bool]] = field(default_factory=list)  # (pid, with marks)

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
    hold = KernelHold(datapath, GraftingShaper(grafts=grafts), clock=clock, sleep=clock.sleep)
    hold.classes({}, {})
    return hold, clock


def test_tags_wait_until_what_was_sent_is_acknowledged() -> None:
    datapath = UnackedDatapath(unacked_polls={7: 3})
    hold, clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    assert datapath.process_slots == {7: 2}
    assert datapath.asked == [(7, False), (7, True), (7, True), (7, True)]
    assert 0 < clock.now < GRAFT_WAIT_MAX_S


def test_the_wait_is_bounded() -> None:
    datapath = UnackedDatapath(unacked_polls={7: None})
    hold, clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    assert datapath.process_slots == {7: 2}  # tagged all the same: fail open
    assert GRAFT_WAIT_MAX_S <= clock.now < GRAFT_WAIT_MAX_S + 0.05


def test_no_wait_without_a_lossy_graft_or_for_processes_tagged_already() -> None:
    datapath = UnackedDatapath(unacked_polls={7: None, 8: None})
    hold, clock = _hold(datapath, grafts=0)
    hold.tags({7: 2}, {}, {7})
    assert datapath.asked == [] and clock.now == 0
    hold, clock = _hold(datapath, grafts=1)
    hold.tags({7: 2}, {}, {7})
    datapath.asked.clear()
    hold.classes({}, {})
    hold.tags({7: 2}, {}, {7, 8})  # no graft since: the next tags do not wait
    assert datapath.asked == []
