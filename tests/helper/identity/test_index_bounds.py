"""What a lookup may cost the index (issue 20): any local user may name ids
that no application has, or a pid, as often as they like."""

from __future__ import annotations

from chadthrottle.helper.identity.index import LOOKUP_REFRESH_INTERVAL_S, YOUNG_S, ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo

SCOPE = "/user.slice/app-gnome-org.x.Editor-7.scope"


class Proc:
    """A fake /proc that counts how often it is listed and read."""

    def __init__(self) -> None:
        self.processes: dict[int, ProcessInfo] = {}
        self.listings = 0
        self.reads: list[int] = []
        self.now = 1000.0

    def spawn(self, pid: int, exe: str = "/usr/bin/python3", cgroup: str = "/") -> ProcessInfo:
        self.processes[pid] = ProcessInfo(pid, 1, 1000, exe, (exe,), exe.rsplit("/", 1)[-1], cgroup)
        return self.processes[pid]

    def list_pids(self) -> list[int]:
        self.listings += 1
        return list(self.processes)

    def read(self, pid: int) -> ProcessInfo | None:
        self.reads.append(pid)
        return self.processes.get(pid)

    def index(self) -> ApplicationIndex:
        return ApplicationIndex(
            list_pids=self.list_pids, read=self.read,
            read_exe=lambda pid: self.processes[pid].exe if pid in self.processes else None,
            clock=lambda: self.now,
            read_start=lambda pid: 1 if pid in self.processes else None,
            read_cgroup=lambda pid: self.processes[pid].cgroup if pid in self.processes else None,
        )  # fmt: skip


def test_a_burst_of_lookups_lists_proc_once_per_interval() -> None:
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh()
    assert proc.listings == 1
    looked = [index.refresh_for_lookup() for _ in range(1000)]
    assert proc.listings == 2 and looked.count(True) == 1
    proc.now += LOOKUP_REFRESH_INTERVAL_S * 0.9
    assert not any(index.refresh_for_lookup() for _ in range(1000))
    assert proc.listings == 2
    proc.now += LOOKUP_REFRESH_INTERVAL_S * 0.2
    assert index.refresh_for_lookup() and proc.listings == 3


def test_a_lookup_reads_no_process_it_has_read_unless_just_started() -> None:
    """A flood of unknown ids costs no read of the processes already known
    (it cost a full read of /proc twice a second): one that moved into an
    app scope long after it started is found by a tick's full read."""
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh()
    proc.spawn(11)
    index.refresh()  # 11: first read now
    proc.now += YOUNG_S + 1
    proc.spawn(11, cgroup=SCOPE)
    proc.reads.clear()
    for _ in range(100):
        proc.now += LOOKUP_REFRESH_INTERVAL_S
        assert index.refresh_for_lookup()
    assert proc.reads == [] and index.application("app:org.x.Editor") is None


def test_a_young_process_moved_into_its_app_scope_is_found_by_the_next_lookup() -> None:
    """A launcher moves its child into the app scope after starting it; the
    index read it in between (same executable: a tick would not read it
    again). It is checked again while young, and read again, alone."""
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh()
    proc.spawn(11)
    index.refresh()
    proc.now += YOUNG_S / 2
    proc.spawn(11, cgroup=SCOPE)
    proc.reads.clear()
    assert index.refresh_for_lookup()
    assert index.application("app:org.x.Editor") is not None and proc.reads == [11]


def test_a_young_process_moved_into_its_app_scope_is_found_by_the_next_tick() -> None:
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh()
    proc.spawn(11)
    index.refresh()
    proc.spawn(11, cgroup=SCOPE)
    index.refresh()
    assert index.application("app:org.x.Editor") is not None


def test_a_lookup_refresh_is_not_counted_as_a_tick() -> None:
    """Lookups do not move the ticks' own full refresh (every
    FULL_REFRESH_TICKS-th) earlier or later."""
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh()
    for _ in range(30):
        proc.now += LOOKUP_REFRESH_INTERVAL_S
        index.refresh_for_lookup()
    reads_before = len(proc.reads)
    index.refresh()  # the second tick: no full refresh, 10 is not read again
    assert len(proc.reads) == reads_before


def test_update_process_reads_no_other_process() -> None:
    proc = Proc()
    proc.spawn(10)
    proc.spawn(11)
    proc.spawn(12, exe="/usr/bin/curl")
    index = proc.index()
    index.refresh()
    listings, reads = proc.listings, list(proc.reads)
    index.update_process(proc.spawn(10, cgroup=SCOPE))  # moved to its scope since last read
    assert (proc.listings, proc.reads) == (listings, reads)
    assert set(index.application("app:org.x.Editor").processes) == {10}  # type: ignore[union-attr]
    assert set(index.application("exe:/usr/bin/python3").processes) == {11}  # type: ignore[union-attr]
    assert index.identity_of(10).app_id == "app:org.x.Editor"  # type: ignore[union-attr]
    index.update_process(proc.spawn(11, cgroup=SCOPE))
    assert index.application("exe:/usr/bin/python3") is None  # its last process left
    assert index.pids_by_app() == {"app:org.x.Editor": {10, 11}, "exe:/usr/bin/curl": {12}}
    index.refresh()  # and the next tick keeps what was learnt without reading it again
    assert set(index.application("app:org.x.Editor").processes) == {10, 11}  # type: ignore[union-attr]
    assert proc.reads == reads


def test_taking_new_processes_reads_only_those_not_seen_yet() -> None:
    """What a limit change costs: one listing of /proc and a read of each
    process started since the last refresh, none of the others."""
    proc = Proc()
    proc.spawn(10)
    proc.spawn(11, cgroup=SCOPE)
    index = proc.index()
    index.refresh()
    proc.reads.clear()
    proc.spawn(12, cgroup=SCOPE)
    assert index.take_new_processes() == 1
    assert proc.reads == [12]
    assert set(index.application("app:org.x.Editor").processes) == {11, 12}
    assert index.take_new_processes() == 0 and proc.reads == [12]


def test_a_lookup_within_the_interval_still_finds_a_process_started_since() -> None:
    """An application started just after a tick's full refresh, named at once
    (`chadthrottle-ctl limit` right after starting it): the lookup reads the
    new process, and only it."""
    proc = Proc()
    proc.spawn(10)
    index = proc.index()
    index.refresh(full=True)
    proc.spawn(11, cgroup=SCOPE)
    proc.now += 0.1
    proc.reads.clear()
    assert index.refresh_for_lookup()
    assert index.application("app:org.x.Editor") is not None
    assert proc.reads == [11]
