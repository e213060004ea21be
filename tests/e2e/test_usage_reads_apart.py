"""A user's flood of its own GetUsage does not hold up everyone else's.

GetUsage reads are one at a time (a flood costs one thread's work), and
until 2026-12-06 every call waited its turn behind every one queued before
it: a user with only `monitor` and a long history of its own, reading all of
it by minute, put root's usage view behind every call it sent. Now of each
user's only one waits its turn (helper/adapter/service.py, _slow_read),
as for ListConnections (tests/e2e/test_slow_reads_apart.py).

Judged by order, not by time: while nobody's GetUsage calls are queued,
root's waits behind at most the one being read and the one next in line. A
helper of its own, on a state directory whose history nobody already has
(48,000 minutes of 40 programs), the real polkitd granting nobody's client."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.usage.buckets import Level, bucket_start
from chadthrottle.helper.usage.store import UsageStore
from chadthrottle.usage_contract import UsageResolution

from tests.e2e.test_slow_reads_apart import NOBODY, QUEUED, Flooder
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair
from tests.support.other_users import granted
from tests.support.waiting import eventually

PROGRAMS, MINUTES = 40, 1_200  # nobody's history: 48,000 rows by minute, under MAX_USAGE_ROWS


def _nobodys_history(state_dir: Path, now: int) -> int:
    """A usage database with PROGRAMS x MINUTES minutes of nobody's; since when."""
    store = UsageStore(state_dir)
    assert store.open(), "the usage database could not be made"
    store.close()
    first = (now - MINUTES * 60) // 60 * 60
    rows = [(60, first + minute * 60, f"exe:/opt/history/program{program}", NOBODY, 1000, 100, 0, 0)
            for program in range(PROGRAMS) for minute in range(MINUTES)]  # fmt: skip
    # and the hours they add up to, as the store writes every level at once
    # (root reads by hour: with minutes alone it read none, unless the helper
    # had written some of its own by then)
    hours = {bucket_start(Level.HOUR, first + minute * 60) for minute in range(MINUTES)}
    rows += [(int(Level.HOUR), hour, f"exe:/opt/history/program{program}", NOBODY, 60_000, 6_000, 0, 0)
             for program in range(PROGRAMS) for hour in sorted(hours)]  # fmt: skip
    with sqlite3.connect(state_dir / "usage.sqlite3") as db:
        db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return first


@pytest.fixture
def helper(pair: NetnsPair, private_bus, tmp_path: Path) -> Iterator[tuple[HelperProcess, int]]:  # type: ignore[no-untyped-def]
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    since = _nobodys_history(state_dir, int(time.time()))
    with HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state_dir) as process:
        yield process, since


def test_a_users_flood_of_its_own_usage_holds_up_no_one_else(
    helper: tuple[HelperProcess, int],
    private_bus,  # type: ignore[no-untyped-def]
) -> None:
    _process, since = helper
    flooder = Flooder(private_bus.address)
    try:
        with granted(flooder):
            assert eventually(lambda: "ok" in flooder.ask("list"), 10)
            flooder.flood("usage", since, QUEUED)
            before = flooder.answered
            rows = call_helper(
                private_bus.address,
                lambda c: c.get_usage("", since, 0, UsageResolution.HOUR),
            )
            during = flooder.answered - before
            assert rows, "root read no history"
            assert during <= 2, f"root's GetUsage waited for {during} of nobody's"
            assert not flooder.done.is_set(), (
                "nobody's flood was over before root's call: not judged"
            )
            assert flooder.done.wait(300), "the flood was not answered"
    finally:
        flooder.close()
