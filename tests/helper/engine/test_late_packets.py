"""A socket outlives its process: data still queued when it exited goes out
after, and so does the FIN exchange. The kernel counts those bytes under the
exited process (its sockets' tags: pid and start) after the tick that retired
its counters; they must go to its application, not to the interface alone
(the accounting Burst flake of 2026-12-06: 52 bytes each way short). A real
process and /proc; a recording stand-in for the datapath."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from chadthrottle.contract import BackendInfo
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import boot_ticks, read_start

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper, Traffic
from tests.support.requirements import require_root
from tests.support.reused_pids import start_at, stop, wait_for_exec
from tests.support.waiting import eventually


def _recorded_engine() -> tuple[RecordingDatapath, AdminEngine]:
    """An engine over a recording datapath and shaper, the real index and /proc."""
    datapath = RecordingDatapath()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    return datapath, engine


def _late_child_of(
    parent: int, start: int, engine: AdminEngine, datapath: RecordingDatapath
) -> None:
    """A child of `parent` started at `start` that the helper comes to late:
    already gone (no such pid), its connection's 34,336/34,456 B counted."""
    child = _no_such_pid()
    engine._tracking.lineage = _Lineage({child: parent})
    engine.note_new_owner(child, start=start)
    datapath.traffic.append(Traffic(child, 34_336, 34_456, owner_start=start))


def test_bytes_counted_under_an_exited_process_after_its_retirement_go_to_its_app(
    program: Path,
) -> None:
    datapath, engine = _recorded_engine()
    process, start = _announced(engine, program)
    try:
        datapath.traffic.append(Traffic(process.pid, 4000, 3000, owner_start=start))
        engine.tick()
    finally:
        process.kill()
        process.wait()
    engine.tick()  # gone: its counters retired into its application
    assert datapath.traffic == []
    # the peer's FIN and the last ACK, counted by the kernel under the exited process
    datapath.traffic.append(Traffic(process.pid, 52, 52, owner_start=start))
    engine.tick()
    engine.tick()
    (app,) = [a for a in engine.list_applications() if a.id == f"exe:{program}"]
    assert (app.rx_bytes, app.tx_bytes) == (4052, 3052)
    assert datapath.traffic == [], "retired again: the kernel map keeps room for the living"
    (device,) = engine.list_interfaces()
    assert (device.rx_bytes, device.tx_bytes) == (4052, 3052)


def _gone_before_its_bytes(
    program: Path, sibling: bool
) -> tuple[Path, RecordingDatapath, AdminEngine]:
    """A tick reads the counters, then /proc: a short-lived process announced
    before the read (its socket made) whose data all moved, and which exited,
    between the two is gone at that tick with no counter of it read; its whole
    connection is counted after. sibling: another process of its program
    runs throughout (a forked child's parent)."""
    datapath, engine = _recorded_engine()
    parent = subprocess.Popen([str(program), "600"]) if sibling else None
    try:
        if parent is not None:
            wait_for_exec(parent.pid, program)
            engine.tick()  # the parent listed
        process, start = _announced(engine, program)
        process.kill()
        process.wait()
        engine.tick()  # gone, with nothing of it read
        datapath.traffic.append(Traffic(process.pid, 34_336, 34_456, owner_start=start))
        engine.tick()
        engine.tick()
    finally:
        if parent is not None:
            parent.kill()
            parent.wait()
    return program, datapath, engine


def _announced(engine: AdminEngine, program: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A process of program, running, announced to the engine as a new owner
    (as the datapath's socket hook announces one); and its start time."""
    process = subprocess.Popen([str(program), "600"])
    try:
        wait_for_exec(process.pid, program)
        start = read_start(process.pid)
        assert start is not None
        engine.note_new_owner(process.pid, start=start)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, start


@pytest.mark.parametrize("sibling", [True, False], ids=["beside-its-parent", "alone"])
def test_a_connection_counted_wholly_after_its_processs_exit_was_noticed_counts_for_its_app(
    program: Path, sibling: bool
) -> None:
    """beside-its-parent: the BurstBare scenario (2026-12-06, load 3.5: one
    child's 34,336/34,456 B on the interface and not in the application;
    counted since 1eb36ac). alone: a short-lived program's only process (a
    curl): its application had never been listed, and was forgotten, with the
    exited process it was waiting for, at the tick that saw it gone."""
    _, datapath, engine = _gone_before_its_bytes(program, sibling)
    (app,) = [a for a in engine.list_applications() if a.id == f"exe:{program}"]
    assert (app.rx_bytes, app.tx_bytes) == (34_336, 34_456)
    assert f"exe:{program}" in engine._tracking.known  # its name: kept with it
    assert datapath.traffic == [], "retired: the kernel map keeps room for the living"
    (device,) = engine.list_interfaces()
    assert (device.rx_bytes, device.tx_bytes) == (34_336, 34_456)


class _Lineage:
    """The fork events' answer (proc_events.ProcessLineage): child -> parent."""

    def __init__(self, parents: dict[int, int]) -> None:
        self.parents = parents

    def parent_or_why(self, tgid: int, start: int = 0) -> tuple[int | None, str]:
        parent = self.parents.get(tgid)
        return parent, "" if parent is not None else "no fork without an exec seen"


def _no_such_pid() -> int:
    """A pid no process runs under (a child that exited long since)."""
    pid = 4_194_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


@pytest.mark.parametrize("forked", ["before-it-exited", "after-it-was-seen-gone"])
def test_a_child_announced_after_its_parent_exited_too_counts_for_the_parents_app(
    program: Path, forked: str
) -> None:
    """The BurstBare flake (2026-12-06, a two-lane run: 90 of 200 children's
    bytes on the interface only): the helper ran late, and came to a forked
    child's announcement after the child had exited, and its parent too, and
    a tick had seen the parent gone: neither could be read. The parent as the
    index last read it names the child's application, if it can have forked
    it (after-it-was-seen-gone: a child started after that had another parent
    under the pid, handed out again: not guessed)."""
    datapath, engine = _recorded_engine()
    parent, parent_start = _indexed(program, engine)
    parent.kill()
    parent.wait()
    engine.tick()  # the parent seen gone
    start = parent_start if forked == "before-it-exited" else boot_ticks() + 1
    _late_child_of(parent.pid, start, engine, datapath)
    engine.tick()  # counted, and the child seen gone: its counters retired
    engine.tick()
    apps = {a.id: (a.rx_bytes, a.tx_bytes) for a in engine.list_applications()}
    (device,) = engine.list_interfaces()
    assert (device.rx_bytes, device.tx_bytes) == (34_336, 34_456)
    if forked == "before-it-exited":
        assert apps == {f"exe:{program}": (34_336, 34_456)}
    else:
        assert apps == {}


def _indexed(program: Path, engine: AdminEngine) -> tuple[subprocess.Popen[bytes], int]:
    """`program` started and listed by the index at a tick (no socket of its
    own): the process, and its start."""
    process = subprocess.Popen([str(program), "600"])
    try:
        wait_for_exec(process.pid, program)
        engine.tick()
        start = read_start(process.pid)
        assert start is not None
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, start


def _is_zombie(pid: int) -> bool:
    """Exited, not yet reaped: /proc still lists it, with no executable."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.mark.parametrize("then", ["still-a-zombie", "reaped", "reaped-and-seen-gone"])
def test_a_parent_a_tick_read_as_a_zombie_still_names_its_late_children(
    program: Path, then: str
) -> None:
    """The BurstBare flake again (CI m2, 2026-12-07: 76 of 200 children's
    bytes on the interface only; flake30 caught 8 of 200 beside a second
    lane): the burst's parent exited, and a tick read it before its own
    parent reaped it. A zombie has no executable and no command line, so
    that read named no application, and the index forgot whose the parent
    was: the children the late helper came to after that (exited too) were
    named by nothing. A process that exits stays whose it was."""
    datapath, engine = _recorded_engine()
    parent, parent_start = _indexed(program, engine)
    try:
        parent.kill()
        assert eventually(lambda: _is_zombie(parent.pid), 10.0, 0.01)
        engine.tick()  # the parent read as a zombie
        if then != "still-a-zombie":
            parent.wait()
        if then == "reaped-and-seen-gone":
            engine.tick()
        _late_child_of(parent.pid, parent_start, engine, datapath)
        engine.tick()  # counted, and the child seen gone: its counters retired
        engine.tick()
    finally:
        parent.kill()
        parent.wait()
    apps = {a.id: (a.rx_bytes, a.tx_bytes) for a in engine.list_applications()}
    (device,) = engine.list_interfaces()
    assert (device.rx_bytes, device.tx_bytes) == (34_336, 34_456)
    assert apps == {f"exe:{program}": (34_336, 34_456)}


def test_a_parent_read_before_its_exec_names_its_late_children_by_its_program(
    program: Path,
) -> None:
    """flake30 (1 of 120 BurstBare runs beside a second lane, with the zombie
    fix): a tick read the burst's parent while it was still its launcher
    (nsenter, before its exec of python), and until the next tick the index
    named it so; a child the late helper came to after it exited went to
    exe:/usr/bin/nsenter. A parent whose executable changed since the index
    read it is read again, once."""
    datapath, engine = _recorded_engine()
    launcher = f'read go; exec "{program}" 600'
    parent = subprocess.Popen(["/bin/sh", "-c", launcher], stdin=subprocess.PIPE)
    try:
        engine.tick()  # the parent read as its launcher (sh)
        assert parent.stdin is not None
        parent.stdin.write(b"go\n")
        parent.stdin.flush()
        wait_for_exec(parent.pid, program)
        parent_start = read_start(parent.pid)
        assert parent_start is not None
        _late_child_of(parent.pid, parent_start, engine, datapath)  # before the next tick
        engine.tick()
        engine.tick()
        apps = {a.id: (a.rx_bytes, a.tx_bytes) for a in engine.list_applications()}
    finally:
        parent.kill()
        parent.wait()
        if parent.stdin is not None:
            parent.stdin.close()
    assert apps == {f"exe:{program}": (34_336, 34_456)}


def test_processes_that_could_not_be_identified_are_counted_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A child neither read nor named by a parent: its bytes go to the
    interface only, and the log says how many such at the next tick (once a
    minute at most), so a test's helper log tells this loss from others."""
    _, engine = _recorded_engine()
    first, second = _no_such_pid(), _no_such_pid() - 1
    with caplog.at_level(logging.INFO, logger="chadthrottle.engine"):
        started = boot_ticks()
        engine.note_new_owner(first, start=started)
        engine.note_new_owner(second, start=boot_ticks())
        engine.tick()
        engine.note_new_owner(first - 2, start=boot_ticks())
        engine.tick()  # within the minute: not said again yet
    said = [r.getMessage() for r in caplog.records if "could be identified" in r.getMessage()]
    assert said == [
        "2 processes with sockets exited before they could be identified (2: no process "
        f"events; the first, {first}: start {started}): "
        "their bytes count for their interfaces, not for an application"
    ]


@pytest.mark.parametrize("read", ["indexed", "announced", "from-proc"])
def test_a_process_under_the_parents_pid_that_started_after_the_child_does_not_name_it(
    program: Path, read: str
) -> None:
    """The fork events name a child's parent by pid only. If that pid was
    handed out again before the helper came to the child (its parent exited,
    a held-up helper), the process under it now started after the child and
    cannot be its parent: it does not name it (was: the child's bytes went to
    whatever program got the pid), as departed_identity does not."""
    datapath, engine = _recorded_engine()
    later = subprocess.Popen([str(program), "600"])
    try:
        wait_for_exec(later.pid, program)
        later_start = read_start(later.pid)
        assert later_start is not None
        if read == "indexed":
            engine.tick()
        elif read == "announced":  # it opened a socket (Tracking.announced), not indexed yet
            engine.note_new_owner(later.pid, start=later_start)
        # the child started a second before the pid's process
        counted = _a_childs_bytes(datapath, engine, later.pid, later_start - 100)
    finally:
        later.kill()
        later.wait()
    (device,) = engine.list_interfaces()
    assert (device.rx_bytes, device.tx_bytes) == (34_336, 34_456)
    assert counted == {}, "named by a process that started after it"


@pytest.mark.parametrize("forked_by", ["the pid's process now", "the one before it"])
def test_a_parent_under_a_pid_handed_out_since_the_last_tick_is_read_as_it_is_now(
    tmp_path: Path, forked_by: str
) -> None:
    """The index reads processes each tick; between two, the parent a child
    is named by may run under a pid the index last saw another process of
    the same executable hold (python and python: its executable unchanged,
    so not read again). Its start says it is another: the child was named by
    the process that had the pid before (another script's application, with
    pid_max at 32,768 here a wrap every 32,768 forks). A child that started
    before the pid's process now was the one before's, as the index read it."""
    require_root()
    scripts = [tmp_path / "before.py", tmp_path / "parent.py"]
    for script in scripts:
        script.write_text("import time\ntime.sleep(600)\n")
    datapath, engine = _recorded_engine()
    before = subprocess.Popen([sys.executable, str(scripts[0])])
    parent = None
    try:
        _wait_for_script(before.pid, scripts[0])
        engine.tick()  # the index reads the pid's process
        assert engine._tracking.index.identity_of(before.pid) is not None
        stop(before)
        parent = start_at(before.pid, [sys.executable, str(scripts[1])])
        _wait_for_script(parent.pid, scripts[1])
        parent_start = read_start(parent.pid)
        assert parent_start is not None
        before_start = engine._tracking.index.start_of(before.pid)
        assert before_start is not None and before_start < parent_start
        # forked by it and exited before the helper came to it
        start = parent_start + 1 if forked_by == "the pid's process now" else before_start
        counted = _a_childs_bytes(datapath, engine, parent.pid, start)
    finally:
        stop(before, parent)
    named_by = scripts[1] if forked_by == "the pid's process now" else scripts[0]
    assert counted == {f"script:{named_by}": (34_336, 34_456)}


def test_the_children_of_a_parent_no_tick_read_are_named_by_it_after_it_exited(
    tmp_path: Path,
) -> None:
    """A script forking short-lived children lived under a second (BlipsBare):
    no tick read it, and the children the helper came to after it exited were
    named by nothing (CI s2: 26 of them, "its parent could not be named"). The
    parent read for its first child is kept, and departs at the next tick."""
    script = tmp_path / "forker.py"
    script.write_text("import time\ntime.sleep(600)\n")
    datapath, engine = _recorded_engine()
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        _wait_for_script(parent.pid, script)
        parent_start = read_start(parent.pid)
        assert parent_start is not None
        first, second = _no_such_pid(), _no_such_pid() - 1
        engine._tracking.lineage = _Lineage({first: parent.pid, second: parent.pid})
        engine.note_new_owner(first, start=parent_start)  # the parent runs: read from /proc
    finally:
        stop(parent)
    engine.tick()  # sees the parent gone
    engine.note_new_owner(second, start=parent_start)  # the helper came to it late
    datapath.traffic.append(Traffic(second, 540, 0, owner_start=parent_start))
    engine.tick()
    engine.tick()
    apps = {a.id: (a.rx_bytes, a.tx_bytes) for a in engine.list_applications()}
    counted = {app_id: moved for app_id, moved in apps.items() if moved != (0, 0)}
    assert counted == {f"script:{script}": (540, 0)}


def _wait_for_script(pid: int, script: Path) -> None:
    """Until the process runs the script: forked from this Python, it runs
    this interpreter (and this command line) until its exec."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    assert eventually(lambda: str(script).encode() in cmdline.read_bytes(), 10.0)


def _a_childs_bytes(
    datapath: RecordingDatapath, engine: AdminEngine, parent: int, start: int
) -> dict[str, tuple[int, int]]:
    """A child of parent (the fork events' word), started at start, gone
    before the helper came to it, that moved 34,336 B down and 34,456 B up:
    the applications its bytes counted for, two ticks on."""
    child = _no_such_pid()
    engine._tracking.lineage = _Lineage({child: parent})
    engine.note_new_owner(child, start=start)
    datapath.traffic.append(Traffic(child, 34_336, 34_456, owner_start=start))
    engine.tick()
    engine.tick()
    apps = {a.id: (a.rx_bytes, a.tx_bytes) for a in engine.list_applications()}
    return {app_id: moved for app_id, moved in apps.items() if moved != (0, 0)}
