"""The log's reason a process went to no application comes from the reads
its naming made, not from a second look: the lineage and the parent's /proc
change meanwhile (a fork event applied, a process given the pid), and the
reason then told of a later state than the one the naming failed on (review38
on edd79dad). The lineage and the parent's read are stand-ins here: the
change between the two looks is made on purpose."""

from __future__ import annotations

import os

from chadthrottle.helper.engine.tracking import Tracking
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo, read_process
from chadthrottle.helper.kernel.proc_events import ProcessLineage

from tests.helper.engine.recording_ports import RecordingDatapath

NO_FORK = "no fork without an exec seen"


class _LateFork:
    """Fork events in which the child's fork arrives just after the naming
    asked (a drain by the events thread): the first answer names no parent,
    every later one names `parent`."""

    def __init__(self, child: int, parent: int) -> None:
        self.child, self.parent, self.applied = child, parent, False

    def _now(self, tgid: int) -> int | None:
        answer = self.parent if self.applied and tgid == self.child else None
        self.applied = True
        return answer

    def parent_or_why(self, tgid: int, start: int = 0) -> tuple[int | None, str]:
        parent = self._now(tgid)
        return parent, "" if parent is not None else NO_FORK


def test_the_reason_is_the_lineage_the_naming_asked_not_a_later_one() -> None:
    tracking = Tracking(ApplicationIndex(), RecordingDatapath(), _LateFork(4_000_001, os.getpid()))
    assert tracking.new_owner(4_000_001, 0, None, 123) is None
    assert dict(tracking._unidentified) == {NO_FORK: 1}, "told of the fork that came after"


def test_the_reason_tells_the_parent_as_the_naming_read_it() -> None:
    """The naming read the parent exiting (no executable: names nothing);
    a look after found it running a program (this test's Python)."""
    me = os.getpid()
    running = read_process(me)
    assert running is not None and running.exe
    exiting = ProcessInfo(pid=me, ppid=0, uid=0, exe="", argv=(), comm="", cgroup="")
    index = ApplicationIndex(read=lambda pid: exiting if pid == me else read_process(pid))
    lineage = ProcessLineage()
    lineage.forked(me, 4_000_002)
    tracking = Tracking(index, RecordingDatapath(), lineage)
    assert tracking.new_owner(4_000_002, 0, None, 0) is None
    assert dict(tracking._unidentified) == {"its parent could not be named": 1}
    detail = tracking._unidentified_example
    assert "as ('', (), '')" in detail, detail
    assert running.exe not in detail, f"a later read of the parent told: {detail}"


def test_the_lineage_answers_the_parent_and_why_none_from_one_look() -> None:
    lineage = ProcessLineage()
    lineage.forked(1, 10)
    assert lineage.parent_or_why(10) == (1, "")
    assert lineage.parent_or_why(11) == (None, NO_FORK)
