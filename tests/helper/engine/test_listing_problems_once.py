"""A publish reads each listed viewer's problems (every namespace's
enforcement gaps) once: its basis and its rows read them twice until snap35."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import ADMIN_VIEWER, SetLimit
from chadthrottle.helper.engine.core import EngineCore

from tests.helper.engine.test_engine_plan import World


def test_a_publish_reads_each_listed_viewers_problems_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.spawn(10)
    world.shaper.gaps = {Direction.UP: ["eth9: someone's qdisc"]}
    read: list[object] = []
    problems = EngineCore._problems

    def counted(self: EngineCore, viewer_pids: Collection[int] | None = None) -> object:
        read.append(viewer_pids)
        return problems(self, viewer_pids)

    monkeypatch.setattr(EngineCore, "_problems", counted)
    world.engine.tick()  # root and uid 1000 listed at each publish (first callers)
    snapshot = world.engine.published()
    assert snapshot is not None and len(snapshot.applications) == 2
    assert len(read) == 2, f"{len(read)} reads of problems for 2 listings"
    read.clear()
    (app_id,) = world.engine.apply_changes([SetLimit("pid:10", Direction.UP, 50_000, 0)])
    assert len(read) == 2, f"{len(read)} reads of problems for 2 listings"
    snapshot = world.engine.published()
    assert snapshot is not None
    (row,) = [row for row in snapshot.applications[ADMIN_VIEWER] if row.id == app_id]
    assert "someone's qdisc" in row.up_limit_problem
