"""Who may do what, decided by the real polkitd: root, an unprivileged uid with
no session (denied), and that uid granted limit-own (and monitor) by a polkit
rule written during the test. Own versus other users' applications, and what
ListApplications discloses to whom.

The polkit rule names the client's pid (tests/support/other_users.py).
Whose rules apply to which processes: tests/e2e/test_rule_owners.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import Direction, ErrorName, RuleScope

from tests.e2e.conftest import MiB, Stack
from tests.e2e.test_limit_over_dbus import wait_until_at_limit
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, app_scope, start_stream
from tests.support.other_users import DENIED, NO_SUCH, ClientAs, granted, stream_as
from tests.support.requirements import require_program
from tests.support.waiting import eventually

NOBODY = 65534


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    client = ClientAs(stack.bus_address, NOBODY)
    yield client
    client.close()


@pytest.fixture
def grant(nobody: ClientAs) -> Iterator[Path]:
    """monitor + limit-own for the nobody client's process only."""
    with granted(nobody) as path:
        yield path


@pytest.fixture
def two_users_apps(stack: Stack) -> Iterator[tuple[Stream, Stream]]:
    """An upload by NOBODY's application and one by root's, both running."""
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestNobodyApp")) as nobody_scope, \
            app_scope(stack.cgroup_root, own_names.desktop_id("TestRootApp")) as root_scope:  # fmt: skip
        streams: list[Stream] = []
        try:
            streams.append(stream_as(NOBODY, stack.pair, 5700, nobody_scope))
            streams.append(start_stream(stack.pair, 5701, "up", app_cgroup=root_scope))
            assert eventually(lambda: {NOBODY_APP, ROOT_APP} <= _listed_with_users(stack), 10.0), (
                "not listed"
            )
            yield streams[0], streams[1]
        finally:
            for stream in streams:
                stream.stop()


NOBODY_APP = own_names.app_id("TestNobodyApp")
ROOT_APP = own_names.app_id("TestRootApp")


def _listed_with_users(stack: Stack) -> set[str]:
    """The applications the helper lists with their users (a tick after they
    started; waited for rather than a fixed 1.5 s)."""
    return {a.id for a in call_helper(stack.bus_address, lambda c: c.list_applications()) if a.uids}


def test_root_sees_and_limits_every_users_applications(
    stack: Stack, two_users_apps: tuple[Stream, Stream]
) -> None:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    assert apps[NOBODY_APP].uids == (NOBODY,) and apps[ROOT_APP].uids == (0,)
    assert (
        call_helper(stack.bus_address, lambda c: c.set_limit(NOBODY_APP, Direction.UP, MiB))
        == NOBODY_APP
    )
    assert call_helper(stack.bus_address, lambda c: c.clear_limit(NOBODY_APP)) == NOBODY_APP


def test_without_a_session_nobody_may_do_nothing(
    stack: Stack, nobody: ClientAs, two_users_apps: tuple[Stream, Stream]
) -> None:
    before = stack.idle_tc_state()
    denied = DENIED
    assert nobody.ask("list") == denied
    assert nobody.ask("set", NOBODY_APP, "up", MiB) == denied  # its own: limit-own, no session
    assert nobody.ask("set", ROOT_APP, "up", MiB) == denied
    assert nobody.ask("set", "exe:/no/such/app", "up", MiB) == denied  # learns nothing
    assert stack.tc_state() == before


def test_granted_limit_own_limits_its_own_application_only(
    stack: Stack, nobody: ClientAs, grant: Path, two_users_apps: tuple[Stream, Stream]
) -> None:
    own, others = two_users_apps
    assert nobody.ask("set", f"pid:{own.app_pid}", "up", MiB) == {"ok": NOBODY_APP}
    wait_until_at_limit(lambda s: own.receiver.rate_bps(s) / (1448 / 1500), MiB, tolerance=0.15)
    assert 0.85 * MiB <= own.receiver.rate_bps(2.0) / (1448 / 1500) <= 1.15 * MiB
    assert (
        f"uid {NOBODY} set up limit of {NOBODY_APP} (own) to {MiB} B/s" in stack.helper.log_text()
    )

    limited = stack.tc_state()
    # Its own rule names only its own processes: root's application is "no
    # application of yours", exactly like one that does not exist.
    assert nobody.ask("set", ROOT_APP, "up", MiB) == NO_SUCH
    assert nobody.ask("set", "exe:/no/such/app", "up", MiB) == NO_SUCH
    assert nobody.ask("set", f"pid:{others.app_pid}", "up", MiB) == NO_SUCH  # as if none ran
    assert nobody.ask("set", ROOT_APP, "up", MiB, "all") == DENIED
    assert nobody.ask("clear", ROOT_APP) == NO_SUCH
    assert nobody.ask("clear", ROOT_APP, "all") == DENIED
    # SetPriority is authorized as SetLimit; SetLinkCapacity needs configure (every user's traffic).
    assert nobody.ask("priority", ROOT_APP, "low") == NO_SUCH
    assert (
        nobody.ask("priority", ROOT_APP, "critical") == DENIED
    )  # above normal: limit-any, asked first
    assert nobody.ask("priority", f"pid:{others.app_pid}", "low") == NO_SUCH
    assert nobody.ask("priority", ROOT_APP, "critical", "all") == DENIED
    assert nobody.ask("capacity", 1_000_000, 1_000_000, False) == DENIED
    assert stack.tc_state() == limited
    assert call_helper(stack.bus_address, lambda c: c.get_link_shaping()).down_set_bps == 0
    assert others.receiver.rate_bps(1.0) > 20 * MiB

    # Above normal takes the link from other users: limit-any even for its own rule; low and normal are its own.
    assert nobody.ask("priority", NOBODY_APP, "high") == DENIED
    assert nobody.ask("priority", NOBODY_APP, "critical", "own") == DENIED
    assert all(
        r.priority == "normal" for r in call_helper(stack.bus_address, lambda c: c.list_rules())
    )
    assert nobody.ask("priority", NOBODY_APP, "low") == {"ok": NOBODY_APP}
    assert nobody.ask("priority", NOBODY_APP, "normal") == {"ok": NOBODY_APP}
    assert nobody.ask("clear", NOBODY_APP) == {"ok": NOBODY_APP}


def test_list_applications_shows_a_user_only_its_own(
    stack: Stack, nobody: ClientAs, grant: Path, two_users_apps: tuple[Stream, Stream]
) -> None:
    listed = nobody.ask("list")["ok"]
    assert [NOBODY_APP, [NOBODY]] in listed
    assert all(uids == [NOBODY] for _, uids in listed), (
        listed
    )  # nothing of root's, nor anyone else's
    everything = {a.id for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    assert {NOBODY_APP, ROOT_APP} <= everything


# Every call that names an application by "pid:N" (the listing's calls too).
PID_CALLS: list[tuple[str, ...]] = [
    ("set", "up", MiB), ("block", "up", True), ("quota", "up", 10**9), ("clear-quota",),
    ("priority", "low"), ("schedule", "mon", "09:00", "10:00", 50_000), ("clear",),
    ("processes",), ("connections",),
]  # fmt: skip


def _gone_pid() -> int:
    """A pid no process has now: a child's, reaped."""
    child = subprocess.Popen([require_program("true")])
    child.wait()
    assert not Path(f"/proc/{child.pid}").exists()
    return child.pid


def test_a_user_learns_not_which_pids_run(
    stack: Stack, nobody: ClientAs, grant: Path, two_users_apps: tuple[Stream, Stream]
) -> None:
    """Under hidepid a user does not see others' pids in /proc, and the helper
    must not tell them either: another user's process, root's, and a pid no
    process has get one answer, word for word, from every call taking
    "pid:N". (Another's was NotAuthorized, "that process is not yours".)
    Root, who sees every pid, is told which it is."""
    own, roots = two_users_apps
    sleeper = subprocess.Popen(
        [require_program("setpriv"), "--reuid=61002", "--regid=61002", "--clear-groups",
         require_program("sleep"), "60"]
    )  # fmt: skip
    try:
        others = {"root's": roots.app_pid, "another user's": sleeper.pid}
        assert eventually(lambda: Path(f"/proc/{sleeper.pid}").stat().st_uid == 61002, 5.0)
        for verb, *rest in PID_CALLS:
            gone = _gone_pid()
            expected = nobody.ask("said", verb, f"pid:{gone}", *rest)
            assert expected["error"] == NO_SUCH["error"], (verb, expected)
            for whose, pid in others.items():
                answer = nobody.ask("said", verb, f"pid:{pid}", *rest)
                text = answer.get("text", "").replace(str(pid), str(gone))
                assert {**answer, "text": text} == expected, (verb, whose, answer)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert own.app_pid in nobody.ask("processes", f"pid:{own.app_pid}")["ok"]  # one's own: told

    def root_own(pid: int) -> str:
        try:
            call_helper(
                stack.bus_address,
                lambda c: c.set_limit(f"pid:{pid}", Direction.UP, MiB, scope=RuleScope.OWN),
            )
        except HelperClientError as error:
            return error.name
        return "ok"

    assert root_own(own.app_pid) == ErrorName.NOT_AUTHORIZED.value
    assert root_own(_gone_pid()) == ErrorName.NO_SUCH_APPLICATION.value
    assert call_helper(stack.bus_address, lambda c: c.list_rules()) == []
