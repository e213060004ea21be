"""A killed helper's walks record (walks-INSTANCE.owed) and tc journal of
namespaces that are gone are named by the leak checks (the session's and
scripts/run-tests' compare) once nobody's, and swept by the test's close of
its killed helper; one still of use (a listed process runs, a live datapath
of the instance, a namespace or owner alive) is neither
(tests/support/left_records.py; held35 saw a killed helper's tc journal for
a test namespace stay until any helper's next start)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.ownership import RUN_DIR, OwnershipRecord, _journal_tag
from chadthrottle.helper.kernel.pending_walks import record_of
from chadthrottle.helper.kernel.tc_ownership import netns_inode
from pyroute2 import IPRoute

from tests.support import held_records, leaks
from tests.support.leaks import JOURNALS, OWED, differences, snapshot
from tests.support.requirements import require_root

NO_NAMESPACE = 1  # no network namespace has this inode (theirs are 4026531840 and up)


@contextlib.contextmanager
def _removed_after(*paths: Path) -> Iterator[None]:
    try:
        yield
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _owed(instance: str, tgid: int, start: int) -> Path:
    """A walks record of instance owing caps on tgid started at start."""
    path = record_of(instance)
    assert path is not None
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    path.write_text(f"{tgid} {start} 1000000 0 -1\n")
    return path


def _dead_pid() -> int:
    """A pid whose process exited (and was reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _journal(instance: str, owner: int, netns_inode: int) -> Path:
    """A tc journal of instance owned by pid owner, with an IFB entry in the
    namespace of that inode."""
    path = RUN_DIR / f"tc-{owner}-{secrets.token_hex(4)}-{_journal_tag(instance)}.journal"
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    entry = {"key": "ifb:7", "netns": 99, "netns_inode": netns_inode, "ifb_name": "ctifb0"}
    path.write_text(json.dumps(entry) + "\n")
    return path


def _own_netns_inode() -> int:
    with IPRoute() as ipr:
        return netns_inode(ipr)


def _named(before: dict[str, object], key: str, path: Path) -> bool:
    return any(d.startswith(f"{key}:") and path.name in d for d in differences(before, snapshot()))


def test_a_walks_record_is_named_once_no_process_it_lists_runs_nor_its_instance() -> None:
    require_root()
    before = snapshot()
    me, start = os.getpid(), read_start(os.getpid())
    assert start is not None
    running, instance = _owed(secrets.token_hex(8), me, start), secrets.token_hex(8)
    gone = _owed(instance, me, start + 1)  # this pid, another process: gone
    with _removed_after(running, gone):
        assert not _named(before, OWED, running), "a record still of use was named"
        live = OwnershipRecord([], instance=instance)  # a live datapath of its instance
        try:
            assert not _named(before, OWED, gone), "a live helper's record was named"
        finally:
            live.close()
        assert _named(before, OWED, gone), "a walks record nobody's was not named"


def test_a_tc_journal_is_named_once_its_owner_and_every_namespace_it_names_are_gone() -> None:
    require_root()
    before = snapshot()
    instance, dead = secrets.token_hex(8), _dead_pid()
    gone = _journal(instance, dead, NO_NAMESPACE)
    owner_alive = _journal(instance, os.getpid(), NO_NAMESPACE)
    namespace_alive = _journal(instance, dead, _own_netns_inode())
    with _removed_after(gone, owner_alive, namespace_alive):
        assert _named(before, JOURNALS, gone), "a dead journal of gone namespaces was not named"
        assert not _named(before, JOURNALS, owner_alive), "a live owner's journal was named"
        assert not _named(before, JOURNALS, namespace_alive), "one of a live namespace was named"


def test_the_runs_compare_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/run-tests' check (python -m tests.support.leaks save|compare);
    judged by its lines of these records only: the machine's namespace is
    compared whole there, and other sessions change it meanwhile."""
    require_root()
    monkeypatch.setattr(leaks, "HELD_GRACE_S", 0.2)  # nobody sweeps these: no wait for it
    saved = tmp_path / "before.json"
    assert leaks.main(["save", str(saved)]) == 0
    instance = secrets.token_hex(8)
    me, start = os.getpid(), read_start(os.getpid()) or 0
    owed, journal = _owed(instance, me, start + 1), _journal(instance, _dead_pid(), NO_NAMESPACE)
    capsys.readouterr()
    with _removed_after(owed, journal):
        assert leaks.main(["compare", str(saved)]) == 1
        said = capsys.readouterr().out
    assert f"LEFT BEHIND ({OWED}): {owed.name}" in said, said
    assert f"LEFT BEHIND ({JOURNALS}): {journal.name}" in said, said
    leaks.main(["compare", str(saved)])
    said = capsys.readouterr().out
    assert owed.name not in said and journal.name not in said, said


def test_a_killed_helpers_close_sweeps_its_walks_record_and_dead_journals_only() -> None:
    """Its instance's, once nobody's (after the test, for a namespace that
    goes with it); another instance's are its successor's (or its sweep's)."""
    require_root()
    killed, other = secrets.token_hex(8), secrets.token_hex(8)
    me, start = os.getpid(), read_start(os.getpid()) or 0
    owed, journal = _owed(killed, me, start + 1), _journal(killed, _dead_pid(), NO_NAMESPACE)
    held = _journal(killed, _dead_pid(), _own_netns_inode())  # its namespace lives on
    theirs = [_owed(other, me, start + 1), _journal(other, _dead_pid(), NO_NAMESPACE)]
    with _removed_after(owed, journal, held, *theirs):
        try:
            held_records.killed_closed(killed)
            assert not owed.exists(), "its walks record stayed, nobody's"
            assert not journal.exists(), "its journal of gone namespaces stayed"
            assert held.exists(), "a journal of a namespace still alive was removed"
            assert killed in held_records.KILLED, "not kept for its live namespace's end"
            assert all(path.exists() for path in theirs), "another instance's were removed"
        finally:
            held_records.KILLED.pop(killed, None)
