"""On the real datapath's slot_gates array: a change of blocks refused by tc
(a foreign root qdisc: every class refused) leaves the kernel's gate as it
was once the call returns, though the change wrote its gate first
(core.EngineCore._change, _undo_gates; the recording stand-ins' cases:
tests/helper/engine/test_gates_undone_when_tc_refuses.py). Until 2026-12-06
the refused block held until the next tick, listed as not there, and a
refused unblock let the traffic through until then, listed as blocked."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, BackendInfo, Direction
from chadthrottle.helper.engine.api import SetBlocked
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.errors import HelperError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import GATE_BLOCK, POLICE_DOWN, policer_key

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.support.reused_pids import stop, wait_for_exec

DOWN, UP = Direction.DOWN, Direction.UP


@pytest.fixture
def app_id() -> Iterator[str]:
    """A copy of sleep under a name no other test runs, running: its id."""
    directory = Path(tempfile.mkdtemp(prefix="ct-tcrefuses-"))
    program = directory / "tcrefused"
    shutil.copy("/bin/sleep", program)
    process = subprocess.Popen([str(program), "600"])
    try:
        wait_for_exec(process.pid, program)
        yield f"exe:{program}"
    finally:
        stop(process)
        shutil.rmtree(directory)


def _blocks_download(engine: AdminEngine, datapath: Datapath, app_id: str) -> bool:
    """Whether the kernel's download gate of app_id's slot blocks."""
    slot = engine._applier.slots.slot_of((app_id, ADMIN_OWNER))
    assert slot is not None and datapath.gates is not None
    return bool(datapath.gates._entry(policer_key(slot, POLICE_DOWN)).flags & GATE_BLOCK)


def test_blocks_refused_by_tc_leave_the_kernels_gate_as_it_was(
    datapath: Datapath, app_id: str
) -> None:
    table = LimitTable()
    table.set((app_id, ADMIN_OWNER), UP, Limit.with_default_burst(200_000, 0))  # its slot
    shaper = RecordingShaper()
    engine = AdminEngine(datapath, shaper, ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())], rules=table)  # fmt: skip
    engine.tick()
    assert not _blocks_download(engine, datapath, app_id)

    shaper.refuse = True
    (outcome,) = engine.apply_changes([SetBlocked(app_id, (DOWN,), True)])
    assert isinstance(outcome, HelperError), outcome
    assert not _blocks_download(engine, datapath, app_id), "the refused block held"
    (listed,) = [app for app in engine.list_applications() if app.id == app_id]
    assert not listed.down_blocked

    shaper.refuse = False
    assert engine.apply_changes([SetBlocked(app_id, (DOWN,), True)]) == [app_id]
    assert _blocks_download(engine, datapath, app_id)
    shaper.refuse = True
    (outcome,) = engine.apply_changes([SetBlocked(app_id, (DOWN,), False)])
    assert isinstance(outcome, HelperError), outcome
    assert _blocks_download(engine, datapath, app_id), "the refused unblock let traffic through"
    (listed,) = [app for app in engine.list_applications() if app.id == app_id]
    assert listed.down_blocked and listed.down_limit_problem == ""
