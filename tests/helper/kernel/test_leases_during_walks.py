"""Blocks and quotas hold while the engine walks processes' descriptors.

A process the engine tags has its whole descriptor table read under the
engine's lock (a readlink each: 150 ms for 19,000 descriptors here), and a
user chooses how many descriptors and how many new processes there are: a
program of the user's, limited, holding 19,000 and forking a child every
50 ms held the lock 2-2.4 s a tick. The gates' leases (LEASE_S, 3 s) were
renewed once a tick, before the walks, so they lapsed and an administrator's
block on another application let 0.9 MB through in 20 s (rights28, the real
helper). The engine now renews them between walks when due
(Gating.renew_if_due, from Datapath.set_between_walks).

On the real datapath: new processes of a limited program, each holding many
descriptors, walked at a tick; the lease of another program's block is from
after the last walk, not from the tick's start. Judged against the tick's
own length, not against a time. And inside one walk: a table of 524,288
descriptors (systemd's hard limit) takes seconds, so the walk calls back
every PAUSE_EVERY_FDS descriptors (socket_tagging.pausing)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, BackendInfo, Direction
from chadthrottle.helper.engine.api import SetBlocked
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import LEASE_S, SlotGates, monotonic_ns
from chadthrottle.helper.kernel.layout import POLICE_UP, policer_key
from chadthrottle.helper.kernel.socket_tagging import PAUSE_EVERY_FDS

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.support.reused_pids import stop, wait_for_exec

DESCRIPTORS = 15_000  # each new process's (the helper's tests run with a limit of 20,000)
NEW_PROCESSES = 4
HOLDER = (
    "import os, sys, time\n"
    "null = os.open('/dev/null', os.O_RDONLY)\n"
    "held = [os.dup(null) for _ in range(int(sys.argv[1]))]\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def programs() -> Iterator[tuple[Path, Path]]:
    """A copy of sleep (the blocked program) and a script that holds descriptors
    (the limited one), under names no other test runs."""
    directory = Path(tempfile.mkdtemp(prefix="ct-walks-"))
    try:
        shutil.copy("/bin/sleep", directory / "sleep")
        (directory / "holder.py").write_text(HOLDER)
        yield directory / "sleep", directory / "holder.py"
    finally:
        shutil.rmtree(directory)


def _holder(script: Path, descriptors: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, str(script), str(descriptors)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    except BaseException:
        stop(process)  # not left sleeping 600 s on the test run's stderr
        raise
    return process


@contextlib.contextmanager
def _a_block_and_a_limit(
    kernel_ready: Path, programs: tuple[Path, Path], renew_due_s: float
) -> Iterator[tuple[AdminEngine, Datapath, list[subprocess.Popen[str]], str]]:
    """An engine on the real datapath: an administrator's upload block on the
    sleeping program, and the descriptor holder limited (one of it running).
    Yields the engine, its datapath, what runs (stopped after) and the blocked
    id. renew_due_s: how often the leases are renewed when walks call back."""
    blocked_program, holder_script = programs
    blocked, limited = f"exe:{blocked_program}", f"script:{holder_script}"
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    engine._applier.gating.renew_due_s = renew_due_s
    running: list[subprocess.Popen[str]] = []
    try:
        running.append(subprocess.Popen([str(blocked_program), "600"], text=True))
        wait_for_exec(running[0].pid, blocked_program)
        running.append(_holder(holder_script, 10))
        engine.tick()
        (outcome,) = engine.apply_changes([SetBlocked(blocked, (Direction.UP,), True, ADMIN_OWNER)])
        assert outcome == blocked, outcome
        assert engine.set_limit(limited, Direction.UP, 100_000, 0) == limited
        yield engine, datapath, running, blocked
    finally:
        stop(*running)
        datapath.close()


def test_a_block_is_renewed_after_a_ticks_long_walks(
    kernel_ready: Path, programs: tuple[Path, Path]
) -> None:
    # renewed after every walk: the order, not the interval, is judged
    with _a_block_and_a_limit(kernel_ready, programs, 0.0) as (engine, datapath, running, blocked):
        new = [_holder(programs[1], DESCRIPTORS) for _ in range(NEW_PROCESSES)]
        running += new

        started = monotonic_ns()
        engine.tick()  # identifies the new processes and walks each
        ended = monotonic_ns()

        assert all(engine._applier.hold.slot_of_process(p.pid) for p in new), "not walked"
        slot = engine._applier.slots.slot_of((blocked, ADMIN_OWNER))
        assert slot is not None
        gates = datapath.gates
        lease_until = gates._entry(policer_key(slot, POLICE_UP)).lease_until_ns
        renewed = lease_until - int(LEASE_S * 1e9)
        assert started <= renewed <= ended
        # Before: renewed at the tick's start, before the walks (the most of it).
        assert ended - renewed < (ended - started) / 4, (
            f"the block's lease was last renewed {(ended - renewed) / 1e6:.0f} ms before the "
            f"end of a tick of {(ended - started) / 1e6:.0f} ms that walked "
            f"{NEW_PROCESSES} x {DESCRIPTORS} descriptors"
        )


def test_one_long_walk_renews_the_leases_as_it_goes(
    kernel_ready: Path, programs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals: list[int] = []
    renew = SlotGates.renew
    monkeypatch.setattr(SlotGates, "renew", lambda gates: (renewals.append(1), renew(gates))[1])
    # renewed at every call back: their number is judged
    with _a_block_and_a_limit(kernel_ready, programs, 0.0) as (engine, datapath, running, _):
        # one whole walk in the tick, as a retag's or a caps change's is (a first
        # tag's is cut at walk_budget_s: tests/helper/kernel/test_pending_walks.py)
        datapath.walk_budget_s = 60.0
        new = _holder(programs[1], DESCRIPTORS)
        running.append(new)

        renewals.clear()
        engine.tick()  # identifies the new process and walks its table

        assert engine._applier.hold.slot_of_process(new.pid), "not walked"
        # the tick's own and the one after the walk; before, none inside it
        inside = DESCRIPTORS // PAUSE_EVERY_FDS
        assert len(renewals) >= 2 + inside, (
            f"{len(renewals)} renewals in a tick that walked {DESCRIPTORS} descriptors"
        )
