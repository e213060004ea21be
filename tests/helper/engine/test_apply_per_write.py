"""A write call's apply reads each rule's processes once (Apply.one_plan), and
asks the shaper to read the namespaces only of processes new to it: at 64
rules of one user a SetLimit read every rule's reached processes six
times (live_rules per step, then the classes', tags' and fair shares' own
reads) and every limited process's namespace (snap35)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine import apply
from chadthrottle.helper.engine.api import SetLimit
from chadthrottle.helper.engine.kernel_hold import KernelHold
from chadthrottle.helper.identity.processes import ProcessInfo

from tests.helper.engine.test_engine_plan import World

USER = 65534
RULES = 64


def test_a_write_reads_each_rules_processes_once_and_restats_no_namespace(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(RULES + 1):
        exe = f"/opt/app{n}"
        world.processes[100 + n] = ProcessInfo(100 + n, 1, USER, exe, (exe,), f"app{n}", "/")
    world.engine.tick()
    for n in range(RULES):
        (done,) = world.engine.apply_changes(
            [SetLimit(f"pid:{100 + n}", Direction.UP, 50_000, 0, USER)]
        )
        assert isinstance(done, str), done
    reads: list[tuple[str, int]] = []
    reached, tagged = apply.reached_pids, KernelHold.pids_tagged

    def counted(index: object, table: object, key: tuple[str, int]) -> list[int]:
        reads.append(key)
        return reached(index, table, key)  # type: ignore[arg-type]

    def tagged_counted(self: KernelHold, slot: int) -> set[int]:
        reads.append(("tagged", slot))
        return tagged(self, slot)

    monkeypatch.setattr(apply, "reached_pids", counted)
    monkeypatch.setattr(KernelHold, "pids_tagged", tagged_counted)
    world.shaper.restats.clear()
    (app_id,) = world.engine.apply_changes(
        [SetLimit(f"pid:{100 + RULES}", Direction.UP, 60_000, 0, USER)]
    )
    # one plan for the classes to the tags, one more for release_unused (after the tags)
    assert len(reads) <= 2 * (RULES + 1), f"{len(reads)} reads of rules' processes at {RULES} rules"
    assert world.shaper.restats == [False], "a write read every limited process's namespace"
    assert world.shaper.limited_pids == set(range(100, 100 + RULES + 1))
    assert app_id in {key[0] for key in reads}
    world.shaper.restats.clear()
    world.engine.tick()
    assert world.shaper.restats[-1] is True, "the tick reads every namespace again"
