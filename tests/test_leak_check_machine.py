"""scripts/run-tests' check of the machine's own namespace around the whole run
(`python -m tests.support.leaks save|compare FILE`), run here inside a
namespace of this test's own, with devices there before it began: a clsact
left on an uplink fails it (an empty one stayed on eth0 after two test
helpers shaped it, clsact34), and so does a filter left on a clsact that was
there before, which the qdisc listing alone (the sessions' check until
clsact34) did not show. A filter at ChadThrottle's place that a live shaper
of another session records is not this run's."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import MADE_NAMESPACES, _add_netns, nsenter_argv
from tests.support.requirements import require_root

REPO = Path(__file__).parents[1]
GUARD_S = 60.0  # a hang guard, not a timing target
# A filter tc accepts on this kernel (cls_u32 is built, no action module needed).
U32 = ("protocol", "all", "u32", "match", "u32", "0", "0", "classid", "1:1")

# Another session's live shaper: records a hook on ctleakold in a real tc
# journal, then holds it (alive) until its stdin closes.
THEIRS = """
import sys
from pyroute2 import IPRoute
from chadthrottle.helper.kernel.tc_ownership import TcJournal
ipr = IPRoute()
journal = TcJournal(ipr, instance="another-session")
index = ipr.link_lookup(ifname="ctleakold")[0]
journal.hook(index, "ctleakold", 0xFFFFFFF2, False)
print("ok", flush=True)
sys.stdin.read()
journal.close()
"""


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test's own with two uplinks: ctleakup bare,
    ctleakold with a clsact (the machine's own, there before the run)."""
    require_root()
    name = f"ctleakm-{secrets.token_hex(3)}"
    _add_netns(name)
    try:
        for uplink in ("ctleakup", "ctleakold"):
            subprocess.run(["ip", "-n", name, "link", "add", uplink, "type", "veth", "peer",
                            "name", f"{uplink}p"], check=True)  # fmt: skip
        _tc(name, "qdisc", "add", "dev", "ctleakold", "clsact")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        MADE_NAMESPACES.discard(name)


def _tc(namespace: str, *argv: str) -> None:
    subprocess.run(["tc", "-n", namespace, *argv], check=True)


def _check(namespace: str, action: str, file: Path) -> tuple[int, str]:
    done = subprocess.run(
        nsenter_argv(namespace, [sys.executable, "-m", "tests.support.leaks", action, str(file)]),
        cwd=REPO, capture_output=True, text=True, timeout=GUARD_S,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_clsact_left_on_an_uplink_and_a_filter_left_on_one_that_was_there_fail_the_run(
    namespace: str, tmp_path: Path
) -> None:
    before = tmp_path / "before.json"
    assert _check(namespace, "save", before)[0] == 0
    _tc(namespace, "qdisc", "add", "dev", "ctleakup", "clsact")
    _tc(namespace, "filter", "add", "dev", "ctleakold", "ingress", "pref", "100", *U32)
    status, output = _check(namespace, "compare", before)
    assert status == 1, output
    assert "LEFT BEHIND (qdiscs): qdisc clsact ffff: dev ctleakup" in output, output
    assert "LEFT BEHIND (hook filters): ctleakold ingress: filter protocol all pref 100 u32" in (
        output
    ), output


def test_a_filter_at_chadthrottles_place_of_another_live_session_is_not_this_runs(
    namespace: str, tmp_path: Path
) -> None:
    before = tmp_path / "before.json"
    assert _check(namespace, "save", before)[0] == 0
    theirs = subprocess.Popen(
        nsenter_argv(namespace, [sys.executable, "-c", THEIRS]), cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert theirs.stdout is not None and theirs.stdout.readline() == "ok\n"
        _tc(namespace, "filter", "add", "dev", "ctleakold", "ingress", "pref", "51117", *U32)
        assert _check(namespace, "compare", before) == (0, "")
        _tc(namespace, "filter", "add", "dev", "ctleakold", "ingress", "pref", "100", *U32)
        status, output = _check(namespace, "compare", before)
        assert status == 1 and "pref 100 u32" in output and "pref 51117" not in output, output
    finally:
        assert theirs.stdin is not None
        theirs.stdin.close()
        theirs.wait(GUARD_S)
        if theirs.stdout is not None:
            theirs.stdout.close()
