"""The read calls answer from the engine's published snapshot, not on the
engine thread: a change held up there (its walks, its windows' wait) holds
up no read (engine/snapshot.py). The engine is the adapter tests' fake."""

from __future__ import annotations

import asyncio
import time
from types import MappingProxyType

from chadthrottle.client import HelperClient
from chadthrottle.contract import ApplicationInfo, BackendInfo, Direction, LinkShapingInfo, RuleInfo
from chadthrottle.helper.engine.snapshot import Looked, RunningProcess, Snapshot

from tests.helper.adapter.conftest import SLOW_APP, FakeEngineForAdapterTests, InProcessHelper

SNAPSHOT_APP = "exe:/usr/bin/snapshot-only"
SNAPSHOT_ROW = ApplicationInfo(id=SNAPSHOT_APP, name="snapshot-only", icon="", uids=(0,), pids=(7,),
                               down_bps=0.0, up_bps=0.0, rx_bytes=0, tx_bytes=0,
                               down_limit_bps=0, up_limit_bps=0)  # fmt: skip


def test_reads_answer_from_the_snapshot_while_the_engine_thread_is_held(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    async def run() -> None:
        async with HelperClient(adapter_helper.address) as client:
            await client.list_applications()  # a first look: on the engine thread
            await client.list_backends()
            (viewer,) = {v for kind, v in engine.lookers}
            assert {kind for kind, _ in engine.lookers} == {Looked.APPLICATIONS, Looked.BACKENDS}
            engine.snapshot = Snapshot(
                rules=(RuleInfo(SNAPSHOT_APP, "up", 1000, 0, 0, True),),
                schedules=(),
                paused=True,
                link_shaping=LinkShapingInfo(down_set_bps=5000),
                applications=MappingProxyType({viewer: (SNAPSHOT_ROW,)}),
                backends=MappingProxyType({viewer: (BackendInfo("snapshot", True, "", ()),)}),
            )
            engine.calls.clear()
            slow = asyncio.ensure_future(client.set_limit(SLOW_APP, Direction.DOWN, 5000))
            while ("resolve_application", SLOW_APP) not in engine.calls:  # the engine thread held
                await asyncio.sleep(0.01)
            started = time.monotonic()
            assert [a.id for a in await client.list_applications()] == [SNAPSHOT_APP]
            assert [r.app_id for r in await client.list_rules()] == [SNAPSHOT_APP]
            assert await client.list_schedules() == []
            assert await client.get_limits_paused() is True
            assert (await client.get_link_shaping()).down_set_bps == 5000
            assert [b.name for b in await client.list_backends()] == ["snapshot"]
            assert time.monotonic() - started < 5
            assert not slow.done()
            reads = {"list_applications", "list_rules", "list_schedules", "list_backends"}
            assert not [call for call in engine.calls if call[0] in reads]
            engine.release_slow.set()
            assert await asyncio.wait_for(slow, 10) == SLOW_APP

    asyncio.run(run())


def test_detail_reads_of_a_running_application_wait_for_no_engine_thread(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    """ListProcesses and ListConnections of an application the snapshot
    lists as running with the caller's process: not resolved on the engine
    thread, and read off it (snap33: both waited there behind a change's
    walks). An id the snapshot does not run is resolved there as before."""

    async def run() -> None:
        async with HelperClient(adapter_helper.address) as client:
            engine.snapshot = Snapshot(
                rules=(), schedules=(), paused=False, link_shaping=LinkShapingInfo(),
                applications=MappingProxyType({}), backends=MappingProxyType({}),
                running=MappingProxyType({SNAPSHOT_APP: (RunningProcess(7, 0, "snap", 0),)}),
            )  # fmt: skip
            engine.calls.clear()
            slow = asyncio.ensure_future(client.set_limit(SLOW_APP, Direction.DOWN, 5000))
            while ("resolve_application", SLOW_APP) not in engine.calls:  # the engine thread held
                await asyncio.sleep(0.01)
            processes = await asyncio.wait_for(client.list_processes(SNAPSHOT_APP), 5)
            connections = await asyncio.wait_for(client.list_connections(SNAPSHOT_APP), 5)
            assert [p.name for p in processes] == ["curl"]  # the fake engine's rows
            assert len(connections) == 1
            assert not slow.done()
            assert ("resolve_application", SNAPSHOT_APP) not in engine.calls
            assert ("list_processes", SNAPSHOT_APP) in engine.calls
            engine.release_slow.set()
            assert await asyncio.wait_for(slow, 10) == SLOW_APP
            assert await client.list_processes("exe:/usr/bin/curl")  # not in the snapshot's
            assert ("resolve_application", "exe:/usr/bin/curl") in engine.calls

    asyncio.run(run())
