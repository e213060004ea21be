"""bench/capacity_follow.py --through helper --trace reads the helper's estimation
steps from its debug log (bench/helper_trace.py): the lines the helper writes must
parse, decisions and all, or the trace would list nothing and say nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine import estimation as module

from bench.helper_trace import parse_steps
from tests.helper.engine.test_estimation import raised_estimation


def test_the_helpers_debug_lines_parse_into_its_steps(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    estimation, engine, estimator = raised_estimation(100.0)  # no step logged at its start
    waits = iter([0.100, 0.098, 0.096, 0.094, 0.090])  # the last: the tick's

    def read_waits(_ipr: Any, _shaping: Any) -> dict[Direction, float]:
        return {Direction.DOWN: next(waits), Direction.UP: 0.2}

    monkeypatch.setattr(module, "shaper_wait_s", read_waits)
    with caplog.at_level(logging.DEBUG, logger=module.__name__):
        for _ in range(4):
            estimation.glance(engine)
        estimation.tick(engine)
    steps, engine_ticks = parse_steps(caplog.text)
    assert [s.kind for s in steps] == ["glance"] * 4 + ["tick"] and engine_ticks == []
    assert [s.waits_s for s in steps[:4]] == [(0.1, 0.2), (0.098, 0.2), (0.096, 0.2), (0.094, 0.2)]
    taken = [s for s in steps if "our download queue fell" in s.decisions]
    assert len(taken) == 1 and taken[0].estimate == (
        engine.handed[0][1],
        estimator.capacity(Direction.UP),
    )
    assert (
        steps[-1].bytes == (0, 0) and steps[-1].delay_s is None and steps[-1].waits_s == (0.09, 0.2)
    )
