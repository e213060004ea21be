"""Whose processes a rule reaches, written as the attacks that once worked
(issue: "limit your own apps" was "limit anyone's apps").

Three users run the same program (tests/support/traffic.py, so one
application id for all of them): uid NOBODY, granted monitor + limit-own by
the real polkitd exactly as an active local session is; uid OTHER; and root.
A user's rule reaches only that user's processes; an administrator's rule
reaches everyone's, outranks users' rules, and no user can remove it."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction, RuleScope

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, rates_together, start_stream
from tests.support.other_users import DENIED, NO_SUCH, ClientAs, client_as, granted, stream_as
from tests.support.waiting import eventually

NOBODY, OTHER = 65534, 61_002
WIRE = 1448 / 1500  # payload per wire byte of a full TCP segment
# Fast: far above any limit here; the veth does several hundred MiB/s.
FAST_BPS = 20 * MiB


def _within(rate_bps: float, limit_bps: int, tolerance: float = 0.15) -> bool:
    return (1 - tolerance) * limit_bps <= rate_bps / WIRE <= (1 + tolerance) * limit_bps


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


@pytest.fixture
def three_users(stack: Stack) -> Iterator[dict[str, Stream]]:
    """One upload each, by NOBODY, OTHER and root, of the same program."""
    streams: dict[str, Stream] = {}
    try:
        streams["nobody"] = stream_as(NOBODY, stack.pair, 5810)
        streams["other"] = stream_as(OTHER, stack.pair, 5811)
        streams["root"] = start_stream(stack.pair, 5812, "up")
        yield streams
    finally:
        for stream in streams.values():
            stream.stop()


PROBE_S, PROBE_WITHIN_S = 0.5, 2.0


def _rates(streams: dict[str, Stream], seconds: float = 2.0) -> dict[str, float]:
    names = list(streams)
    rates = rates_together([streams[name].receiver for name in names], seconds)
    return dict(zip(names, rates, strict=True))


def _pids_of(stack: Stack, app_id: str) -> set[int]:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    return set(apps[app_id].pids) if app_id in apps else set()


def _wait_for_rates(
    streams: dict[str, Stream], check: object, timeout_s: float = 12.0
) -> dict[str, float]:
    """Read 2 s windows until check(rates) holds (a limit settles within about
    a second); the last reading, for the assertion message. The first window
    starts once a PROBE_S window passes the check (PROBE_WITHIN_S at most): it
    began at once and, straddling the change, failed, and a second one followed."""
    deadline = time.monotonic() + timeout_s
    eventually(lambda: check(_rates(streams, PROBE_S)), PROBE_WITHIN_S, interval_s=0.0)  # type: ignore[operator]
    while True:
        rates = _rates(streams)
        if check(rates) or time.monotonic() > deadline:  # type: ignore[operator]
            return rates


def test_a_users_rule_reaches_only_that_users_processes(
    stack: Stack, nobody: ClientAs, three_users: dict[str, Stream]
) -> None:
    app = nobody.ask("set", f"pid:{three_users['nobody'].app_pid}", "up", MiB)["ok"]
    assert app.startswith("script:") and app.endswith("traffic.py")
    rates = _wait_for_rates(three_users, lambda r: _within(r["nobody"], MiB))
    assert _within(rates["nobody"], MiB), rates
    assert rates["other"] > FAST_BPS and rates["root"] > FAST_BPS, (
        rates
    )  # same program, other users

    # Another user's process is not the caller's to name, with either scope (own:
    # answered as a pid no process has, tests/e2e/test_authorization.py).
    assert nobody.ask("set", f"pid:{three_users['root'].app_pid}", "up", 20_000) == NO_SUCH
    assert nobody.ask("set", f"pid:{three_users['other'].app_pid}", "up", 20_000, "all") == DENIED
    assert nobody.ask("set", app, "up", 20_000, "all") == DENIED
    rules = call_helper(stack.bus_address, lambda c: c.list_rules())
    assert [(r.app_id, r.owner, r.rate_bps) for r in rules] == [(app, NOBODY, MiB)]

    # The user lists and clears what they made.
    assert nobody.ask("rules") == {"ok": [[app, "up", MiB, NOBODY, True]]}
    assert nobody.ask("clear", app) == {"ok": app}
    rates = _wait_for_rates(three_users, lambda r: r["nobody"] > FAST_BPS)
    assert rates["nobody"] > FAST_BPS, rates
    assert call_helper(stack.bus_address, lambda c: c.list_rules()) == []


def test_a_program_several_users_run_shows_each_user_only_their_own(
    stack: Stack, nobody: ClientAs, three_users: dict[str, Stream]
) -> None:
    """Three users run it: the user sees the application with their own
    process, their own rate and their own connections, not the others'
    (it used to be hidden from every user who was not alone in running it)."""
    mine = three_users["nobody"].app_pid
    app = nobody.ask("set", f"pid:{mine}", "up", MiB)[
        "ok"
    ]  # a steady rate of one's own to recognise
    try:
        _wait_for_rates(three_users, lambda r: _within(r["nobody"], MiB))
        deadline = time.monotonic() + 10
        while True:
            rows = {row[0]: row for row in nobody.ask("rows")["ok"]}
            if (app in rows and _within(rows[app][3], MiB, 0.25)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert app in rows, f"the user's own application is not listed to them: {sorted(rows)}"
        _, uids, pids, up_bps = rows[app]
        assert (uids, pids) == ([NOBODY], [mine])
        assert _within(up_bps, MiB, 0.25), (
            f"{up_bps / MiB:.2f} MiB/s shown: not the user's own rate"
        )
        everyone = {
            a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
        }[app]
        assert (
            set(everyone.uids) == {0, NOBODY, OTHER} and everyone.up_bps > 2 * FAST_BPS
        )  # root sees all of it
        assert nobody.ask("connections", app) == {"ok": [mine]}
    finally:  # the next test starts with no rule of this user's
        nobody.ask("clear", app)


def test_an_administrator_rule_reaches_everyone_outranks_and_stays(
    stack: Stack, nobody: ClientAs, three_users: dict[str, Stream]
) -> None:
    app = nobody.ask("set", f"pid:{three_users['nobody'].app_pid}", "up", 512 * 1024)["ok"]
    admin = call_helper(
        stack.bus_address, lambda c: c.set_limit(app, Direction.UP, 3 * MiB)
    )  # root: every user
    assert admin == app
    try:
        # One limit for the sum of everyone's processes; the user's own is outranked.
        rates = _wait_for_rates(three_users, lambda r: _within(sum(r.values()), 3 * MiB))
        assert _within(sum(rates.values()), 3 * MiB), rates
        assert nobody.ask("rules") == {"ok": [[app, "up", 3 * MiB, ADMIN_OWNER, True],
                                              [app, "up", 512 * 1024, NOBODY, False]]}  # fmt: skip
        listed = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
        assert (listed[app].up_limit_bps, listed[app].up_limit_owner) == (3 * MiB, ADMIN_OWNER)
        # a user's ListBackends: the notes as they may read them (their processes' namespaces)
        backends = nobody.ask("backends")["ok"]
        assert [name for name, _, _ in backends] == ["tc", "ebpf"], backends

        # The user can neither remove it nor get around it by clearing their own.
        assert nobody.ask("clear", app, "all") == DENIED
        assert nobody.ask("clear", app) == {"ok": app}
        # Read until a window holds it, as above: one 2 s window read 0.59 and
        # 0.78 of it beside another test session (CPU taken from the senders;
        # 0.74-1.20 in 0.25 s windows either side of the clear). A clear that
        # lifted the limit reads many times over it in every window.
        rates = _wait_for_rates(three_users, lambda r: _within(sum(r.values()), 3 * MiB))
        assert _within(sum(rates.values()), 3 * MiB), rates
        assert [
            (r.owner, r.in_force) for r in call_helper(stack.bus_address, lambda c: c.list_rules())
        ] == [(ADMIN_OWNER, True)]

        # The user's rule applies again once the administrator's is gone.
        assert nobody.ask("set", app, "up", 512 * 1024) == {"ok": app}
    finally:
        call_helper(stack.bus_address, lambda c: c.clear_limit(app, scope=RuleScope.ALL))
    rates = _wait_for_rates(
        three_users, lambda r: _within(r["nobody"], 512 * 1024) and r["root"] > FAST_BPS
    )
    assert (
        _within(rates["nobody"], 512 * 1024)
        and rates["other"] > FAST_BPS
        and rates["root"] > FAST_BPS
    ), rates
    assert nobody.ask("clear", app) == {"ok": app}


@pytest.fixture
def fake_scope_of_nobody(stack: Stack) -> Iterator[Path]:
    """A cgroup NOBODY controls, under its own systemd instance, named after
    root's application's scope: what a user with a delegated subtree can make."""
    base = stack.cgroup_root / f"{own_names.TEST_NAME_PREFIX}{secrets.token_hex(3)}.slice"
    delegated = base / f"user@{NOBODY}.service"
    fake = (
        delegated
        / "app.slice"
        / f"app-gnome-{own_names.desktop_id('RootOnly')}-{os.getpid()}.scope"
    )
    fake.mkdir(parents=True)
    for directory in (delegated, delegated / "app.slice", fake):
        os.chown(directory, NOBODY, NOBODY)
        os.chown(directory / "cgroup.procs", NOBODY, NOBODY)
    try:
        yield fake
    finally:
        for scope in (fake,):
            for pid in (scope / "cgroup.procs").read_text().split():
                os.kill(int(pid), 9)
        deadline = time.monotonic() + 5
        while (fake / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        for directory in (fake, delegated / "app.slice", delegated, base):
            directory.rmdir()


def test_a_fake_app_scope_gives_no_power_over_roots_real_app(
    stack: Stack, nobody: ClientAs, fake_scope_of_nobody: Path
) -> None:
    """The user names a scope in their own subtree after root's app: their
    process then is that app, but their rule still reaches only them."""
    from tests.support.netns import app_scope

    with app_scope(stack.cgroup_root, own_names.desktop_id("RootOnly")) as root_scope:
        streams = {"root": start_stream(stack.pair, 5813, "up", app_cgroup=root_scope)}
        try:
            streams["nobody"] = stream_as(NOBODY, stack.pair, 5814, fake_scope_of_nobody)
            app = own_names.app_id("RootOnly")
            assert eventually(
                lambda: {s.app_pid for s in streams.values()} <= _pids_of(stack, app), 10.0
            ), "both are not known as the app"  # a tick after they started
            assert nobody.ask("set", app, "up", MiB) == {"ok": app}
            rates = _wait_for_rates(streams, lambda r: _within(r["nobody"], MiB))
            assert _within(rates["nobody"], MiB) and rates["root"] > FAST_BPS, rates
            # A new connection of root's app, born in its scope, is not limited either.
            late = start_stream(stack.pair, 5815, "up", app_cgroup=root_scope)
            streams["root-late"] = late
            assert late.receiver.rate_bps(2.0) > FAST_BPS
            assert nobody.ask("clear", app) == {"ok": app}
        finally:
            for stream in streams.values():
                stream.stop()


def test_a_users_block_and_quota_reach_only_them_and_stay_listed_to_them(
    stack: Stack, nobody: ClientAs, three_users: dict[str, Stream]
) -> None:
    """SetBlocked, SetQuota and ClearQuota are authorized as SetLimit: the
    user's block stops their own upload of a program others run too, and only
    theirs; scope all, or another user's process, is refused. A block or a
    quota alone of theirs stays listed to them once their application has
    exited (it was hidden: only a rate kept a stopped application listed)."""
    from tests.support.netns import app_scope
    from tests.support.waiting import eventually

    app = nobody.ask("block", f"pid:{three_users['nobody'].app_pid}", "up", True)["ok"]
    try:
        rates = _wait_for_rates(three_users, lambda r: r["nobody"] < 50_000)
        assert (
            rates["nobody"] < 50_000 and rates["other"] > FAST_BPS and rates["root"] > FAST_BPS
        ), rates
        assert nobody.ask("block", app, "up", True, "all") == DENIED
        assert nobody.ask("quota", app, "down", 5_000_000, "all") == DENIED
        assert nobody.ask("clear-quota", app, "all") == DENIED
        assert nobody.ask("block", f"pid:{three_users['root'].app_pid}", "up", True) == NO_SUCH
        rules = call_helper(stack.bus_address, lambda c: c.list_rules())
        assert [(r.app_id, r.owner, r.blocked) for r in rules if r.direction == "up"] == [
            (app, NOBODY, True)
        ]
    finally:
        assert nobody.ask("block", app, "up", False) == {"ok": app}
    assert call_helper(stack.bus_address, lambda c: c.list_rules()) == []

    desktop_id = own_names.desktop_id("TestGatesNobody", fresh=True)
    own_app = f"app:{desktop_id}"
    with app_scope(stack.cgroup_root, desktop_id) as scope:
        own = stream_as(NOBODY, stack.pair, 5816, scope)
        try:
            assert eventually(lambda: own_app in nobody.ask("gates")["ok"], 5), (
                "the user's application is not listed"
            )
            assert nobody.ask("block", own_app, "up", True) == {"ok": own_app}
            assert nobody.ask("quota", own_app, "down", 5_000_000) == {"ok": own_app}
        finally:
            own.stop()
        try:
            assert eventually(
                lambda: nobody.ask("gates")["ok"].get(own_app) == [False, True, 5_000_000], 5
            ), (
                f"the user's stopped application with their block and quota: {nobody.ask('gates')['ok'].get(own_app)}"
            )
        finally:
            assert nobody.ask("block", own_app, "up", False) == {"ok": own_app}
            assert nobody.ask("clear-quota", own_app) == {"ok": own_app}
