"""How a limit holds in each namespace of its application (limit_reach.py):
what ListApplications says beside SetLimit's LIMIT_REACH."""

from __future__ import annotations

import os
import subprocess

from chadthrottle.helper.kernel.limit_reach import (
    FIRST_COME,
    OTHER_USERS,
    OWN_NAMESPACE,
    SOCKETS_ONLY,
    THEIR_REASON,
    NamespaceHold,
    namespaces_of,
    ordered,
    policed_reach,
    seen_by,
    shaped_reach,
)


def test_one_shaped_namespace_says_nothing_more() -> None:
    assert shaped_reach([NamespaceHold(OWN_NAMESPACE)], guarded=True) == ""
    assert policed_reach([OWN_NAMESPACE]) == ""


def test_namespaces_tc_shapes_divide_by_demand() -> None:
    text = shaped_reach([NamespaceHold(OWN_NAMESPACE), NamespaceHold("namespace ctapp-1")], True)
    assert text.startswith(f"divided by demand between {OWN_NAMESPACE} and namespace ctapp-1")
    assert "policer" not in text


def test_a_namespace_tc_cannot_shape_leaves_the_sum_to_the_policer_and_says_why() -> None:
    holds = [
        NamespaceHold(OWN_NAMESPACE),
        NamespaceHold("namespace a"),
        NamespaceHold("namespace b", "could not enter it: EPERM"),
    ]
    text = shaped_reach(holds, guarded=True)
    assert "divided by demand between" in text and "namespace a" in text
    assert "policed, not shaped in namespace b: could not enter it: EPERM" in text
    assert text.endswith(FIRST_COME)
    # one namespace alone, policed (a foreign filter on its uplink): said too
    alone = shaped_reach([NamespaceHold(OWN_NAMESPACE, "eth0: a u32 filter")], guarded=True)
    assert alone == f"policed, not shaped in {OWN_NAMESPACE}: eth0: a u32 filter; {FIRST_COME}"
    assert "divided by demand" not in alone
    # without the guard nothing holds it there: never claimed as held
    unguarded = shaped_reach([NamespaceHold("namespace b", "no IFB")], guarded=False)
    assert "policer" not in unguarded and unguarded.endswith("the traffic there is not held")


def test_the_ebpf_backend_holds_the_sum_first_come_first_served() -> None:
    text = policed_reach([OWN_NAMESPACE, "namespace x", "namespace y"])
    assert (
        text
        == f"over {OWN_NAMESPACE}, namespace x and namespace y: {FIRST_COME} (the ebpf backend)"
    )


def test_namespaces_of_real_processes() -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    child = subprocess.Popen(["sleep", "30"])
    try:
        found = namespaces_of({os.getpid(): 7, child.pid: 7, 0x7FFFFFF0: 9})  # no such pid
    finally:
        child.kill()
        child.wait()
    assert found == {7: {own}}  # the pid that does not exist is left out
    assert ordered([own + 5, own, own - 5], own) == [own, own - 5, own + 5]


def test_a_user_reads_other_users_namespaces_unnamed_and_without_their_reasons() -> None:
    """An administrator's limit spans every user's processes: a user viewer
    (shown: the inodes of theirs) is not told where others' programs run, nor
    what is wrong there, only how the limit holds."""
    holds: list[tuple[int | None, NamespaceHold]] = [
        (1, NamespaceHold(OWN_NAMESPACE)),
        (2, NamespaceHold("namespace mine")),
        (3, NamespaceHold("namespace alices-vpn")),
        (4, NamespaceHold("namespace bobs", "could not enter it: EPERM")),
        (5, NamespaceHold("namespace carols", "eth9: a u32 filter")),
        (None, NamespaceHold(SOCKETS_ONLY, "no shaper follows sockets alone")),
    ]
    assert seen_by(holds, None) == [hold for _, hold in holds]  # an administrator
    text = shaped_reach(seen_by(holds, {1, 2}), guarded=True)
    for secret in ("alices-vpn", "bobs", "carols", "EPERM", "eth9"):
        assert secret not in text
    assert text.startswith(
        f"divided by demand between {OWN_NAMESPACE}, namespace mine and {OTHER_USERS}"
    )
    assert text.count(f"policed, not shaped in {OTHER_USERS}: {THEIR_REASON}") == 1
    assert f"policed, not shaped in {SOCKETS_ONLY}" in text and text.endswith(FIRST_COME)
    # two other users' namespaces only: still divided, said as such
    two = shaped_reach(seen_by(holds[2:4], set()), guarded=True)
    assert two.startswith(f"shaped by tc in {OTHER_USERS}; policed, not shaped in {OTHER_USERS}")
    both = shaped_reach(seen_by([holds[0], holds[2], (6, NamespaceHold("namespace x"))], {1}), True)
    assert both.startswith(f"divided by demand between {OWN_NAMESPACE} and 2 namespaces of other")
    assert policed_reach([OWN_NAMESPACE, OTHER_USERS, OTHER_USERS]) == (
        f"over {OWN_NAMESPACE} and 2 namespaces of other users: {FIRST_COME} (the ebpf backend)"
    )
