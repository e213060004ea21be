"""How a limit holds in each namespace of its application (limit_reach.py):
what ListApplications says beside SetLimit's LIMIT_REACH."""

from __future__ import annotations

import os
import subprocess

from chadthrottle.helper.kernel.limit_reach import (
    FIRST_COME,
    OWN_NAMESPACE,
    NamespaceHold,
    namespaces_of,
    ordered,
    policed_reach,
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
