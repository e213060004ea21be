"""The process events connector: forks and execs of real processes."""

from __future__ import annotations

import os
import subprocess

from chadthrottle.helper.kernel.proc_events import ProcessLineage, open_proc_events

from tests.support.requirements import require, require_root


def test_forked_children_name_their_parent_and_execd_ones_do_not() -> None:
    require_root()
    events = open_proc_events()
    require(events is not None, "needs the process events connector (CONFIG_PROC_EVENTS)")
    assert events is not None
    try:
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        execd = subprocess.Popen(["true"])  # fork + exec: runs another program
        execd.wait()
        assert events.same_program_parent(child) == os.getpid()
        assert events.same_program_parent(execd.pid) is None
    finally:
        events.close()


def test_lineage_forgets_the_oldest_first() -> None:
    lineage = ProcessLineage(capacity=2)
    lineage.forked(1, 10)
    lineage.forked(1, 11)
    lineage.execd(11)
    lineage.forked(10, 12)
    assert (
        lineage.same_program_parent(10),
        lineage.same_program_parent(11),
        lineage.same_program_parent(12),
    ) == (None, None, 10)
