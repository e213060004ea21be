"""Which app scopes a user's rule tags: only those inside that user's own
systemd instance, the outermost user@UID.service on the path compared whole
(plan.scopes_of_rule). A user names the cgroups below their own instance as
they like, and a process of another uid can sit there (sudo -u from their
terminal): neither a user@<uid>.service named below, nor a uid whose digits
start another's, reaches in."""

from __future__ import annotations

import pytest
from chadthrottle.contract import ADMIN_OWNER
from chadthrottle.helper.engine.plan import scopes_of_rule, user_instance_of
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo

APP = "app:org.fake.Editor"
LEAF = "app.slice/app-gnome-org.fake.Editor-1.scope"


def _scopes(cgroup: str, owner: int, uid: int = 1000) -> set[str]:
    """The scopes owner's rule on APP tags for one process of uid in cgroup."""
    exe = "/usr/bin/editor"
    processes = {10: ProcessInfo(10, 1, uid, exe, (exe,), "editor", cgroup)}
    index = ApplicationIndex(
        list_pids=lambda: list(processes),
        read=processes.get,
        read_exe=lambda pid: processes[pid].exe if pid in processes else None,
        read_cgroup=lambda pid: processes[pid].cgroup if pid in processes else None,
    )
    index.refresh(full=True)
    identity = index.identity_of(10)
    assert identity is not None and identity.app_id == APP, identity
    return scopes_of_rule(index, (APP, owner), [10])


def test_a_scope_in_the_owners_instance_is_tagged() -> None:
    scope = f"/user.slice/user-1000.slice/user@1000.service/{LEAF}"
    assert _scopes(scope, 1000) == {scope}


def test_a_uid_whose_digits_start_anothers_is_not_the_owner() -> None:
    assert _scopes(f"/user.slice/user-10000.slice/user@10000.service/{LEAF}", 1000) == set()
    assert _scopes(f"/user.slice/user-100.slice/user@100.service/{LEAF}", 1000) == set()


def test_an_instance_named_below_another_users_is_not_the_owners() -> None:
    """User 1001 makes user@1000.service/... in their own subtree; a process
    of uid 1000 runs there (sudo -u from 1001's terminal). User 1000's rule
    must not tag that scope: its new sockets are 1001's processes' too."""
    named = (
        f"/user.slice/user-1001.slice/user@1001.service/app.slice/x.scope/user@1000.service/{LEAF}"
    )
    assert _scopes(named, 1000) == set()
    assert _scopes(named, ADMIN_OWNER) == {named}  # an administrator's rule reaches everyone's


@pytest.mark.parametrize(
    ("path", "instance"),
    [
        ("/user.slice/user-1000.slice/user@1000.service/app.slice/a.scope", "user@1000.service"),
        (
            "/user.slice/user-1.slice/user@1.service/app.slice/user@0.service/a.scope",
            "user@1.service",
        ),
        ("/t.slice/user@65534.service/app.slice/a.scope", "user@65534.service"),
        ("/user.slice/user-1000.slice/session-2.scope", None),
        ("/user.slice/user-1000.slice/xuser@1000.service/a.scope", None),
        ("/user.slice/user-1000.slice/user@1000.service-x/a.scope", None),
    ],
)
def test_the_instance_is_the_outermost_whole_component(path: str, instance: str | None) -> None:
    assert user_instance_of(path) == instance
