"""Usage history end to end: the real helper (writing its history every
second, not every minute, so the test is quick), real traffic over the
project's veth pair, GetUsage and `chadthrottle-ctl usage --json`, a SIGKILL
and a restart, and what another user may see."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.app_names import fallback_name
from chadthrottle.contract import ErrorName
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper.usage.store import DATABASE_FILE
from chadthrottle.usage_contract import UsageResolution, UsageRow

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    app_scope,
    end_started,
    netns_pair,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.other_users import client_as, granted, stream_as
from tests.support.requirements import require_program, require_root
from tests.support.waiting import eventually

NOBODY, OTHER = 65534, 61_003
# TCP/IP headers on the wire: 52 bytes per 1448 of payload (3.6%), and the handshake.
WIRE_OVERHEAD = 0.06
# The acknowledgements the application sends for what it receives count in the
# other direction: at most one 52-byte ACK per 1448-byte segment (the receiver
# acknowledges every segment at the start, every second one later, fewer with
# GRO: 0.1-1.8% measured, depending on timing).
ACK_SHARE = 52 / 1448


@pytest.fixture(scope="module")
def stack(
    private_bus: PrivateSystemBus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """This module's own helper: history written every second (--usage-flush-s 1)."""
    require_root()
    require_program("nsenter")
    state_dir = tmp_path_factory.mktemp("usage-state")
    with netns_pair() as pair:
        helper = HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state_dir)
        helper.command += ["--usage-flush-s", "1"]
        with helper:
            yield Stack(private_bus.address, pair, helper, cgroup2_mount())
            if helper.returncode is not None:
                pytest.fail(f"the helper died during the tests:\n{helper.log_text()}")


def _state_dir(stack: Stack) -> Path:
    return Path(stack.helper.command[stack.helper.command.index("--state-dir") + 1])


def _stored(stack: Stack, app_id: str) -> tuple[int, int]:
    """The application's (down, up) in the database on disk, read beside the helper."""
    database = _state_dir(stack) / DATABASE_FILE
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT sum(down), sum(up) FROM usage WHERE level = 86400 AND app_id = ?", (app_id,)
        ).fetchone()
    return (row[0] or 0, row[1] or 0)


def _this_minute() -> int:
    now = int(time.time())
    return now - now % 60


def _usage(
    stack: Stack, app_id: str, since: int, resolution: UsageResolution = UsageResolution.MINUTE
) -> list[UsageRow]:
    """Root's GetUsage. polkitd reloads its rules whenever any test session on
    the machine adds or removes one (they share /etc/polkit-1/rules.d), and a
    check that fails meanwhile is a "no" (fail closed): root asks again, for
    up to 10 s, on that answer only."""
    from chadthrottle.helper_errors import HelperClientError

    deadline = time.monotonic() + 10
    while True:
        try:
            return call_helper(
                stack.bus_address, lambda client: client.get_usage(app_id, since, 0, resolution)
            )
        except HelperClientError as error:
            if error.name != ErrorName.NOT_AUTHORIZED.value or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _sums(rows: list[UsageRow]) -> tuple[int, int]:
    return sum(row.down_bytes for row in rows), sum(row.up_bytes for row in rows)


def _transfer(pair: NetnsPair, scope: Path, port: int, direction: str, payload: int) -> int:
    """payload bytes from (up) or to (down) an application in scope, over the
    veth; returns the payload the receiving side counted."""
    python, script = sys.executable, str(TRAFFIC_SCRIPT)
    # cubic, whatever the machine's default: the bounds below are payload plus
    # headers, true of a transfer without losses. BBR's start-up on an
    # unlimited veth loses and resends segments (221,000-253,000 resent in 20 s
    # here, cubic 3-81), which the datapath rightly counts as the wire's bytes:
    # a 16 MiB download read 1.060-1.076 of its payload in 2 of 8 runs.
    common = ["--port", str(port), "--seconds", "30", "--congestion", "cubic"]
    started: list[subprocess.Popen[str]] = []  # the peer's in no app scope: ended here
    receivers: list[Receiver] = []
    try:
        # The sink is the peer on an upload, the application on a download.
        app_sends = direction == "up"
        sink_ns, source_ns = (
            (pair.peer_ns, pair.host_ns) if app_sends else (pair.host_ns, pair.peer_ns)
        )
        sink_addr = pair.peer_addr if app_sends else pair.host_addr
        sink = spawn(nsenter_argv(sink_ns, [python, script, "serve", "--role", "sink", *common]),
                     None if app_sends else scope)  # fmt: skip
        started.append(sink)
        wait_for_line(sink, "listening")
        receiver = Receiver(sink)
        receivers.append(receiver)
        source = spawn(nsenter_argv(source_ns, [python, script, "connect", "--host", sink_addr, "--role", "source",
                                                "--bytes", str(payload), *common]), scope if app_sends else None)  # fmt: skip
        started.append(source)
        for process in started:
            process.wait(timeout=30)
        receiver.join(10)
    finally:
        end_started(started, receivers)  # exited already, unless a step above failed
    assert receiver.total_bytes() == payload, "the transfer did not complete"
    return payload


def _within(measured: int, payload: int, acknowledged: int = 0) -> bool:
    """measured holds payload with its headers, plus the acknowledgements of
    what the application received the other way (acknowledged payload)."""
    return payload <= measured <= payload * (1 + WIRE_OVERHEAD) + acknowledged * ACK_SHARE


def test_traffic_is_recorded_per_application_and_direction_within_a_few_percent(
    stack: Stack,
) -> None:
    name = own_names.desktop_id("Usage", fresh=True)
    since = _this_minute() - 60
    with app_scope(stack.cgroup_root, name) as scope:
        down = _transfer(stack.pair, scope, 5830, "down", 24 * MiB)
        up = _transfer(stack.pair, scope, 5831, "up", 8 * MiB)
    app_id = f"app:{name}"
    # The last bytes of a process count at the tick after it exits.
    assert eventually(lambda: _sums(_usage(stack, app_id, since)) >= (down, up), 10), _usage(
        stack, app_id, since
    )
    minutes = _usage(stack, app_id, since)
    assert _within(minutes_down := _sums(minutes)[0], down, up) and _within(
        _sums(minutes)[1], up, down
    ), minutes
    assert {row.app_id for row in minutes} == {app_id} and all(
        row.end == row.start + 60 for row in minutes
    )
    # Every resolution holds the same bytes: the hour's and the day's rows are the minutes' sum.
    for resolution in (UsageResolution.HOUR, UsageResolution.DAY, UsageResolution.MONTH):
        since_level = since - since % 3600 if resolution is UsageResolution.HOUR else 0
        assert _sums(_usage(stack, app_id, since_level, resolution)) == _sums(minutes), resolution
    every = {row.app_id for row in _usage(stack, "", since)}
    assert app_id in every and minutes_down > 0
    # The command line shows the same numbers.
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    shown = subprocess.run([sys.executable, "-m", "chadthrottle.cli.ctl", "usage", app_id, "--since", f"@{since}",
                            "--by", "day", "--json"], capture_output=True, text=True, env=env, timeout=30)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert [total["app_id"] for total in report["totals"]] == [app_id]
    assert _within(report["total"]["down_bytes"], down, up) and _within(
        report["total"]["up_bytes"], up, down
    ), report
    # The table names it as `list` does, or, gone, as the usage view does (walk26: ids).
    table = subprocess.run([sys.executable, "-m", "chadthrottle.cli.ctl", "usage", app_id, "--since", f"@{since}"],
                           capture_output=True, text=True, env=env, timeout=30)  # fmt: skip
    listed = {a.id: a.name for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    shown = table.stdout.splitlines()[2].split("  ")[0]
    assert shown == (listed.get(app_id) or fallback_name(app_id)), table.stdout
    assert app_id not in table.stdout, table.stdout
    # The database on disk has them within the flush interval.
    database = _state_dir(stack) / DATABASE_FILE
    assert (database.stat().st_mode & 0o777) == 0o600
    assert eventually(lambda: _stored(stack, app_id) == _sums(minutes), 10), (
        _stored(stack, app_id),
        _sums(minutes),
    )


def test_bad_arguments_get_a_named_error(stack: Stack) -> None:
    from chadthrottle.helper_errors import HelperClientError

    for app_id, since, until, resolution in (("pid:1", 0, 0, "day"), ("exe:", 0, 0, "day"), ("", -1, 0, "day"),
                                             ("", 10, 5, "day"), ("", 0, 0, "week"), ("", 2**41, 0, "day")):  # fmt: skip

        async def call(client, app_id=app_id, since=since, until=until, resolution=resolution):  # type: ignore[no-untyped-def]
            return await client._call("GetUsage", [app_id, since, until, resolution])

        with pytest.raises(HelperClientError) as raised:
            call_helper(stack.bus_address, call)
        assert raised.value.name == ErrorName.INVALID_ARGUMENT.value, (
            app_id,
            since,
            until,
            resolution,
        )


def test_history_survives_a_sigkill_and_a_restart_without_double_counting(stack: Stack) -> None:
    name = own_names.desktop_id("UsageKill", fresh=True)
    app_id, since = f"app:{name}", _this_minute() - 60
    with app_scope(stack.cgroup_root, name) as scope:
        down = _transfer(stack.pair, scope, 5834, "down", 16 * MiB)
    seen: list[tuple[int, int]] = []
    assert eventually(
        lambda: _within((seen.append(_sums(_usage(stack, app_id, since))) or seen[-1])[0], down),
        10,
    ), (down, seen[-3:])
    answered: list[tuple[int, int]] = []

    def on_disk() -> bool:  # all of what the helper answers (flushed every second)
        answered.append(_sums(_usage(stack, app_id, since)))
        return _stored(stack, app_id) == answered[-1]

    assert eventually(on_disk, 10), (_stored(stack, app_id), answered[-1])
    before = answered[-1]
    stack.helper.kill()
    stack.helper.start()
    after_minutes = _sums(_usage(stack, app_id, since))
    after_days = _sums(_usage(stack, app_id, 0, UsageResolution.DAY))
    assert after_minutes == before and after_days == before, (before, after_minutes, after_days)
    time.sleep(2.5)  # ticks of the new helper count from its own (new) counters: nothing twice
    assert _sums(_usage(stack, app_id, since)) == before
    log_text = stack.helper.log_text()
    assert (
        "unusable" not in log_text
        and "usage history" not in log_text
        and "Traceback" not in log_text
    ), log_text


def test_another_users_usage_is_not_shown(stack: Stack) -> None:
    """The same program (tests/support/traffic.py, one application id) run by
    NOBODY and OTHER: NOBODY, with monitor, sees only its own bytes; root sees both."""
    since = _this_minute() - 60
    app_id = f"script:{TRAFFIC_SCRIPT}"

    def own_up(client) -> int:  # type: ignore[no-untyped-def]
        answer = client.ask("usage", app_id, since, "minute")
        return sum(up for _app, _down, up in answer["ok"])

    with client_as(stack.bus_address, NOBODY) as nobody, granted(nobody):
        before = own_up(nobody)
        root_before = _sums(_usage(stack, app_id, since - since % 3600, UsageResolution.HOUR))[1]
        streams = {
            "nobody": stream_as(NOBODY, stack.pair, 5832),
            "other": stream_as(OTHER, stack.pair, 5833),
        }
        try:
            time.sleep(1.0)
        finally:
            for stream in streams.values():
                stream.stop()
        sent = {key: stream.receiver.total_bytes() for key, stream in streams.items()}
        assert sent["nobody"] > MiB and sent["other"] > MiB, sent
        assert eventually(lambda: own_up(nobody) - before >= sent["nobody"], 10)
        seen = own_up(nobody) - before
        # Not OTHER's bytes too (that would be twice as much). Two full-speed
        # uploads over a veth (no queue) lose packets that TCP sends again and
        # the socket counts twice (docs/accounting.md, "Local drops"): up to 20%.
        assert sent["nobody"] <= seen <= 1.2 * sent["nobody"], (seen, sent)
        listed = nobody.ask("usage", "", since, "minute")["ok"]
        assert {row[0] for row in listed} <= {app_id}, listed  # none of root's applications

        def root_sees() -> int:
            return (
                _sums(_usage(stack, app_id, since - since % 3600, UsageResolution.HOUR))[1]
                - root_before
            )

        assert eventually(lambda: root_sees() >= sent["nobody"] + sent["other"], 10), (
            root_sees(),
            sent,
        )
    # polkitd reloads its rules once the test's rule is gone, and may refuse
    # a check meanwhile (root's too): the next test starts once it answers again.
    assert eventually(lambda: _answers_root(stack), 15), stack.helper.log_text()[-3000:]


def _answers_root(stack: Stack) -> bool:
    from chadthrottle.helper_errors import HelperClientError

    try:
        _usage(stack, "", _this_minute())
    except HelperClientError:
        return False
    return True
