"""A caller whose calls keep failing costs the helper little (refusals.py):
its calls are paced before any work is done for them, and its refusals are
counted in the log, not written one line each. A real flooding client as uid
65534 on the real bus with the real polkitd; only the engine is fake."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time

import pytest
from chadthrottle.contract import Action, ErrorName
from chadthrottle.helper.adapter.refusals import RefusalLog
from chadthrottle.helper.adapter.service import (
    FAILURE_DELAY_S,
    FAILURES_BEFORE_DELAY,
    MAX_WAITING,
    MAX_WAITING_BYTES,
    TOO_MANY_WAITING_TEXT,
)

from tests.helper.adapter.conftest import FakeEngineForAdapterTests, InProcessHelper
from tests.support.flood import NOBODY, as_uid_env, flood, polkit_grant, setpriv_argv
from tests.support.requirements import require_program
from tests.support.waiting import eventually

SECONDS, IN_FLIGHT = 2.0, 16
# The client stops sending after SECONDS; its last calls in flight are answered
# paced, one per FAILURE_DELAY_S.
LAST_ANSWER_S = SECONDS + IN_FLIGHT * FAILURE_DELAY_S
SERVICE_LOG = "chadthrottle.helper.adapter.service"


def test_a_caller_that_keeps_failing_is_paced_before_its_calls_are_looked_up(
    engine: FakeEngineForAdapterTests, adapter_helper: InProcessHelper
) -> None:
    """limit-own granted, unknown ids, as fast as answered: each call that is
    started is looked up (and fails), so the lookups count the calls started.
    Paced, a sender starts the calls it had in flight, FAILURES_BEFORE_DELAY
    more, then one per FAILURE_DELAY_S; before, each call was looked up on
    arrival and only its answer waited (16 in flight: ~160 lookups a second).
    The answers are the same."""
    require_program("setpriv")
    with (
        flood(adapter_helper.address, 1, SECONDS, IN_FLIGHT) as flooders,
        polkit_grant(flooders.pids, [Action.LIMIT_OWN.value]),
    ):
        flooders.go(granted=True)
        answered, outcomes = flooders.results(timeout_s=SECONDS + 60)
    lookups = [c for c in engine.calls if c[0] == "resolve_application" and "/flood-" in c[1]]
    assert outcomes == {"NoSuchApplication": answered}, outcomes
    bound = IN_FLIGHT + FAILURES_BEFORE_DELAY + (LAST_ANSWER_S + 1) / FAILURE_DELAY_S
    assert answered == len(lookups) <= bound, (answered, len(lookups), bound)
    assert engine.changes() == []


def test_refusals_are_counted_in_the_log_one_line_per_sender_and_interval(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No permission at all: every call refused by polkit. The first refusal of
    each interval is its own line, the others a count; every refusal is in the
    log, and the log holds a few lines, not one per call."""
    require_program("setpriv")
    interval_s = 1.0
    monkeypatch.setattr(RefusalLog, "INTERVAL_S", interval_s)
    caplog.set_level(logging.INFO, logger=SERVICE_LOG)
    with flood(adapter_helper.address, 1, SECONDS, IN_FLIGHT) as flooders:
        flooders.go()
        answered, outcomes = flooders.results(timeout_s=SECONDS + 60)
    assert outcomes == {"NotAuthorized": answered}, outcomes

    assert eventually(lambda: _logged(caplog)[0] >= answered, 10), (_logged(caplog), answered)
    refusals, lines = _logged(caplog)
    assert refusals == answered
    windows = LAST_ANSWER_S / interval_s + 2  # the flood's, and the ends of the first and last
    assert lines <= 2 * windows < answered, (lines, answered)


def test_a_refusing_callers_count_is_written_when_it_leaves_the_bus(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The helper hears of a connection leaving the bus (NameOwnerChanged) and
    forgets it: its refusals still counted are written then, not at the end
    of an interval far away."""
    require_program("setpriv")
    monkeypatch.setattr(RefusalLog, "INTERVAL_S", 600.0)
    caplog.set_level(logging.INFO, logger=SERVICE_LOG)
    with flood(adapter_helper.address, 1, 1.0, IN_FLIGHT) as flooders:
        flooders.go()
        answered, outcomes = flooders.results(timeout_s=60)
    assert outcomes == {"NotAuthorized": answered} and answered > 1, outcomes

    def counted() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == SERVICE_LOG and " more calls to " in r.getMessage()]  # fmt: skip

    assert eventually(lambda: counted() != [], 10), "no count written when the caller left"
    (line,) = counted()
    assert line.startswith(f"denied {answered - 1} more calls to :"), line


# As uid 65534: argv address, count[, size]. Fails FAILURES_BEFORE_DELAY + 1
# calls (bad arguments), sends count calls that want no reply (the bus does
# not bound those; each with size bytes of text), then one that wants a reply;
# prints its error and text.
NO_REPLY_FLOOD = r"""
import asyncio, json, sys
from chadthrottle.bus_connection import connect_system_bus
from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH
from dbus_fast import Message, MessageFlag

async def main(address, count, size):
    bus = await connect_system_bus(address)  # mends dbus-fast's writer (EAGAIN)
    def call(i, flags=MessageFlag.NONE, text=""):
        return Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="ClearLimit",
                       signature="sass", body=[f"exe:/nonexistent/{i}", [], text], flags=flags)
    for i in range(6):
        await bus.call(call(i))
    text = "x" * size
    for i in range(count):
        bus.send(call(i, MessageFlag.NO_REPLY_EXPECTED, text))
    reply = await asyncio.wait_for(bus.call(call(-1)), 20)
    print(json.dumps([reply.error_name, reply.body[0] if reply.body else ""]), flush=True)
    bus.disconnect()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0))
"""


def test_a_paced_callers_calls_that_want_no_reply_do_not_pile_up(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bus bounds a connection's calls awaiting a reply, not those that
    want none: past MAX_WAITING of them waiting, a paced caller's calls are
    refused unread (and counted in the log), so its next call is answered at
    once instead of after count * FAILURE_DELAY_S."""
    require_program("setpriv")
    caplog.set_level(logging.INFO, logger=SERVICE_LOG)
    count = 4 * MAX_WAITING
    result = subprocess.run(
        [*setpriv_argv(NOBODY), sys.executable, "-c", NO_REPLY_FLOOD, adapter_helper.address, str(count)],
        capture_output=True, text=True, env=as_uid_env(adapter_helper.address), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == [ErrorName.NOT_AUTHORIZED.value, TOO_MANY_WAITING_TEXT]

    bound = count - MAX_WAITING
    assert eventually(lambda: _over_the_bound(caplog) >= bound, 10), _over_the_bound(caplog)


def test_a_paced_callers_calls_that_wait_are_bounded_in_bytes_too(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MAX_WAITING bounds how many of a paced caller's calls wait, not how
    big: a call may carry 32 MiB on the system bus, and 200 no-reply calls of
    4 MiB took the helper from 70 to 696 MiB (review7, 22:43 UTC). Past
    MAX_WAITING_BYTES of arguments its calls are refused unread too: 40 calls
    of a quarter of it, far under MAX_WAITING: 3 wait, and each started
    meanwhile (one per FAILURE_DELAY_S) makes room for one more; before,
    none was refused."""
    require_program("setpriv")
    caplog.set_level(logging.INFO, logger=SERVICE_LOG)
    count, size = 40, MAX_WAITING_BYTES // 4
    result = subprocess.run(
        [*setpriv_argv(NOBODY), sys.executable, "-c", NO_REPLY_FLOOD, adapter_helper.address, str(count), str(size)],
        capture_output=True, text=True, env=as_uid_env(adapter_helper.address), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert eventually(lambda: _over_the_bound(caplog) >= count // 2, 10), _over_the_bound(caplog)


def _over_the_bound(caplog: pytest.LogCaptureFixture) -> int:
    """Calls refused unread past what may wait, by the log (lines and counts)."""
    total = 0
    for record in caplog.records:
        text = record.getMessage()
        if record.name == SERVICE_LOG and "waiting)" in text:
            total += sum(int(n) for n in re.findall(r"waiting\) x(\d+)", text))
            total += text.startswith("denied ClearLimit (over")
    return total


# As uid 65534: argv address, connections. Opens that many connections, each
# calls ClearLimit once (polkit refuses: no session) and stays; prints how many
# answers of which error came, then leaves.
NEW_CONNECTIONS = r"""
import asyncio, collections, json, sys
from chadthrottle.bus_connection import connect_system_bus
from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH
from dbus_fast import Message

async def main(address, count):
    buses = [await connect_system_bus(address) for _ in range(count)]
    def call(i):
        return Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="ClearLimit",
                       signature="sss", body=[f"exe:/nonexistent/new-{i}", "both", ""])
    replies = await asyncio.wait_for(asyncio.gather(*(bus.call(call(i)) for i, bus in enumerate(buses))), 60)
    print(json.dumps(collections.Counter(r.error_name for r in replies)), flush=True)
    for bus in buses:
        bus.disconnect()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_refusals_of_many_new_connections_are_folded_into_one_count(
    engine: FakeEngineForAdapterTests,
    adapter_helper: InProcessHelper,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender is a connection, and a user may open 256 (the system bus's
    max_connections_per_user): one refused call on each of many new
    connections wrote a line each, whatever the counting per sender did.
    Past FIRSTS_PER_INTERVAL senders an interval, their refusals are counted
    together, by user; every refusal is still in the log."""
    require_program("setpriv")
    interval_s, firsts, connections = 1.0, 2, 60
    monkeypatch.setattr(RefusalLog, "INTERVAL_S", interval_s)
    monkeypatch.setattr(RefusalLog, "FIRSTS_PER_INTERVAL", firsts)
    caplog.set_level(logging.INFO, logger=SERVICE_LOG)
    started = time.monotonic()
    result = subprocess.run(
        [*setpriv_argv(NOBODY), sys.executable, "-c", NEW_CONNECTIONS, adapter_helper.address, str(connections)],
        capture_output=True, text=True, env=as_uid_env(adapter_helper.address), timeout=120,
    )  # fmt: skip
    answered_s = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {ErrorName.NOT_AUTHORIZED.value: connections}

    assert eventually(lambda: _logged(caplog)[0] >= connections, 10), (_logged(caplog), connections)
    refusals, lines = _logged(caplog)
    assert refusals == connections
    # the senders written at once, and a count, each interval the refusals came in (and one more)
    bound = (answered_s / interval_s + 2) * (firsts + 1)
    print(f"{refusals} refusals of {connections} connections in {lines} lines ({answered_s:.1f} s)")
    assert lines <= bound < connections, (lines, bound, connections)
    # whose the folded refusals were is said: one user's flood cannot hide another's
    folded = [r.getMessage() for r in caplog.records if " more senders " in r.getMessage()]
    assert folded and all(f"calls of uid {NOBODY} x" in text for text in folded), folded


def _logged(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """(refusals logged, lines) so far: a line names one refusal, or counts more."""
    refusals = lines = 0
    for record in caplog.records:
        text = record.getMessage()
        if record.name == SERVICE_LOG and text.startswith("denied "):
            lines += 1
            more = re.match(r"denied (\d+) more calls to ", text)
            refusals += int(more.group(1)) if more else 1
    return refusals, lines
