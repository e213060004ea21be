"""A pid handed out again on a kernel whose BTF the helper cannot read: the
programs then record no process start (task_offsets: both offsets 0), so the
datapath's announced_owners holds start 0 for every process of a pid, and a
new process under it is announced only if the helper forgot the pid. The
programs are built so here (in a cache directory of the test's own); the pid
is reused for real (ns_last_pid)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from chadthrottle.contract import BackendInfo
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel import program_build
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.task_offsets import FIELDS, netns_offset_flags

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.helper.kernel.test_process_keys import SOCKET_MAKER
from tests.support.reused_pids import start_at, stop


def _announced_twice(datapath: Datapath, announced: list[int], pid: int) -> bool:
    deadline = time.monotonic() + 3
    while announced.count(pid) < 2 and time.monotonic() < deadline:
        datapath.poll_new_owners(50)
    return announced.count(pid) >= 2


def test_without_btf_a_new_process_under_a_reused_pid_is_announced(
    kernel_ready: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the engine forgot a pid's announcement only once no process
    ran under it (a new one, of another start, is announced anyway): without
    starts, a new process under a reused pid was never announced, so a
    limited program's new process was not limited at once, and a short-lived
    one's bytes were not told apart. The pid's first process is retired by
    the tick that finds another under its pid; the other's next socket must
    be announced."""
    # the shared cache's header tree (merged there if need be); the programs are built apart
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(kernel_ready)))
    monkeypatch.setattr(program_build, "offset_flags_of",
                        lambda _blob: [f"-D{flag}=0" for flag in FIELDS] + netns_offset_flags())  # fmt: skip
    datapath = Datapath(cache_dir=tmp_path)  # its own build: the shared cache keeps the real one
    datapath.open()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    announced: list[int] = []

    def on_new_owner(tgid: int, cgroup_id: int, start: int) -> None:
        assert start == 0, "the programs were built without the task offsets"
        announced.append(tgid)
        engine.note_new_owner(tgid, cgroup_id, start)

    first = subprocess.Popen([sys.executable, "-c", SOCKET_MAKER, "now"], stdout=subprocess.PIPE)
    second: subprocess.Popen[str] | None = None
    try:
        datapath.watch_new_owners(on_new_owner)
        pid = first.pid
        assert first.stdout is not None and first.stdout.readline()
        engine.tick()
        deadline = time.monotonic() + 5
        while pid not in announced:
            assert time.monotonic() < deadline, "the first process was not announced"
            datapath.poll_new_owners(50)
        first.kill()
        first.wait()
        time.sleep(0.02)  # another clock tick of /proc's start times
        second = start_at(pid, [sys.executable, "-c", SOCKET_MAKER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)  # type: ignore[assignment]  # fmt: skip
        assert second is not None and second.stdin is not None and second.stdout is not None
        engine.tick()  # finds the first process gone: another runs under its pid
        second.stdin.write("\n")
        second.stdin.flush()
        assert second.stdout.readline()
        assert _announced_twice(datapath, announced, pid), (
            "the new process under the pid was never announced"
        )
    finally:
        stop(first, second)
        datapath.close()
