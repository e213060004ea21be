"""PrivateSystemBus and HelperProcess: start, and leave nothing behind."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import BUS_NAME
from chadthrottle.helper import standalone
from chadthrottle.helper.standalone import (
    POLICY_FILE,
    POLKIT_ACTIONS_DIR,
    HelperProcess,
    PrivateSystemBus,
    StandaloneError,
    private_bus_config,
)
from chadthrottle.helper.standalone_policy import SharedFileInstall
from dbus_fast import NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from tests.support.requirements import require
from tests.support.waiting import eventually


def _daemons_using(directory: Path) -> str:
    result = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    return result.stdout


def test_private_bus_config_is_the_system_config_made_private(tmp_path: Path) -> None:
    config = private_bus_config(
        standalone.SYSTEM_BUS_CONFIG.read_text(), tmp_path / "socket", tmp_path / "d"
    )
    assert f"<listen>unix:path={tmp_path}/socket</listen>" in config
    for gone in (
        "<user>",
        "<pidfile>",
        "<fork/>",
        "<servicehelper>",
        "<standard_system_servicedirs/>",
    ):
        assert gone not in config
    assert "<includedir>/usr/share/dbus-1/system.d</includedir>" in config
    assert config.rstrip().endswith(f"<includedir>{tmp_path}/d</includedir>\n</busconfig>")
    assert '<deny send_type="method_call"/>' in config  # the system's own policy is kept


def test_shared_install_restores_what_was_there_after_the_last_holder(tmp_path: Path) -> None:
    target, state = tmp_path / "x.policy", tmp_path / "state"
    first, second = (
        SharedFileInstall(target, b"new", state),
        SharedFileInstall(target, b"new", state),
    )
    first.acquire()
    second.acquire()
    assert first.installed and not second.installed and target.read_bytes() == b"new"
    first.release()
    assert target.read_bytes() == b"new"  # still needed by the second holder
    second.release()
    assert not target.exists()
    target.write_bytes(b"old")
    third = SharedFileInstall(target, b"new", state)
    third.acquire()
    assert target.read_bytes() == b"new"
    third.release()
    assert target.read_bytes() == b"old"
    identical = SharedFileInstall(target, b"old", state)
    identical.acquire()
    identical.release()
    assert not identical.installed and target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state", "x.policy"]


def test_shared_install_recovers_from_a_holder_that_died(tmp_path: Path) -> None:
    target, state = tmp_path / "x.policy", tmp_path / "state"
    crashed = SharedFileInstall(target, b"new", state)
    crashed.acquire()
    holder = next((state / "x.policy").glob("holder-*"))
    holder.rename(holder.with_name(f"holder-{2**22 + 1}-1"))
    later = SharedFileInstall(target, b"new", state)
    later.acquire()  # the crashed holder is pruned, its backup restored, then reinstalled
    later.release()
    assert not target.exists()


def test_an_abandoned_install_is_put_back_only_with_no_live_holder(tmp_path: Path) -> None:
    target, state = tmp_path / "x.policy", tmp_path / "state"
    target.write_bytes(b"theirs")
    crashed = SharedFileInstall(target, b"ours", state)
    crashed.acquire()
    holder = next((state / "x.policy").glob("holder-*"))
    holder.rename(holder.with_name(f"holder-{2**22 + 1}-1"))  # a pid that cannot live
    alive = SharedFileInstall(target, b"ours", state)
    alive.acquire()
    assert alive.recover_abandoned() is False and target.read_bytes() == b"ours"
    alive.release()  # the last live holder puts back what was there
    assert target.read_bytes() == b"theirs"
    crashed = SharedFileInstall(target, b"ours", state)
    crashed.acquire()
    holder = next((state / "x.policy").glob("holder-*"))
    holder.rename(holder.with_name(f"holder-{2**22 + 1}-1"))
    assert SharedFileInstall(target, b"ours", state).recover_abandoned() is True
    assert target.read_bytes() == b"theirs"
    assert SharedFileInstall(target, b"ours", state).recover_abandoned() is False


def test_a_failed_start_leaves_nothing_behind(
    private_bus: PrivateSystemBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = POLKIT_ACTIONS_DIR / POLICY_FILE
    policy_before = policy.read_bytes() if policy.exists() else None
    monkeypatch.setattr(standalone, "POLKITD", Path("/bin/false"))
    broken = PrivateSystemBus(start_timeout_s=5)
    with pytest.raises(StandaloneError, match="polkitd did not take"):
        broken.__enter__()
    assert broken.directory is not None and not broken.directory.exists()
    assert _daemons_using(broken.directory) == ""
    assert (policy.read_bytes() if policy.exists() else None) == policy_before


def test_its_daemons_end_with_a_process_killed_outright(private_bus: PrivateSystemBus) -> None:
    """A test session or run-app killed by SIGKILL runs no teardown: its bus
    daemons must not outlive it. (The session's own bus holds the polkit
    actions file meanwhile, so the killed holder is pruned when it ends.)"""
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from chadthrottle.helper.standalone import PrivateSystemBus\n"
         "bus = PrivateSystemBus().__enter__()\n"
         "print(bus.directory, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        directory = starter.stdout.readline().strip()
        assert directory and _daemons_using(Path(directory)), directory
    finally:
        starter.kill()
        starter.wait()
    assert eventually(lambda: _daemons_using(Path(directory)) == "", 10.0)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def name_taken(private_bus: PrivateSystemBus) -> Iterator[None]:
    """Someone else owns BUS_NAME for the duration of the test."""

    async def connect() -> MessageBus:
        return await MessageBus(bus_address=private_bus.address).connect()

    loop = asyncio.new_event_loop()
    bus = loop.run_until_complete(connect())
    try:
        reply = loop.run_until_complete(bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE))
        assert reply is RequestNameReply.PRIMARY_OWNER
        yield
    finally:
        bus.disconnect()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def test_helper_process_reports_why_it_did_not_start(
    private_bus: PrivateSystemBus, name_taken: None, tmp_path: Path
) -> None:
    helper = HelperProcess(private_bus.address, state_dir=tmp_path, start_timeout_s=60)
    with pytest.raises(StandaloneError) as caught, helper:
        pass
    assert "chadthrottle-helper:" in str(caught.value)
    assert helper.returncode == 1
    assert not helper.log_path.exists()


def test_helper_process_rejects_a_strange_namespace_name() -> None:
    with pytest.raises(ValueError):
        HelperProcess("unix:path=/x", netns="../../etc")


def test_standalone_runs_a_command_against_bus_and_helper(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    """The README's run command, end to end with the real engine."""
    require(importlib.util.find_spec("chadthrottle.helper.engine.factory") is not None,
            "needs the engine factory (chadthrottle.helper.engine.factory)")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "chadthrottle.helper.standalone", "--state-dir", str(tmp_path), "--",
         sys.executable, "-m", "chadthrottle.cli.ctl", "backends", "--json"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"name"' in result.stdout


def test_standalone_passes_on_the_command_status() -> None:
    require(importlib.util.find_spec("chadthrottle.helper.engine.factory") is not None,
            "needs the engine factory (chadthrottle.helper.engine.factory)")  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "chadthrottle.helper.standalone", "--", "sh", "-c", "exit 7"],
                            capture_output=True, text=True, timeout=240)  # fmt: skip
    assert result.returncode == 7, result.stderr
