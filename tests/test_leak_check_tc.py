"""The end-of-session leak check (tests/conftest.py, tests/support/leaks.py)
judges the tc objects of its own session, not another's.

A flood test's helper shapes the root namespace's uplink (an IFB, a clsact):
every other session that ended, or began, while it ran failed ("devices:
before [...], after ['ctifb...', ...]"). Here a whole pytest session runs in a
namespace of this test's own, beside a process of another session that
makes and removes a real IFB and clsact there, recorded in a real tc journal
(tc_ownership.TcJournal) as a shaper does. The inner session passes; the
same session leaking an IFB and a clsact of its own fails and names them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import MADE_NAMESPACES, _add_netns, nsenter_argv
from tests.support.requirements import require_root

REPO = Path(__file__).parents[1]
GUARD_S = 120.0  # a hang guard for each step, not a timing target

# Another session's shaper: makes an IFB with a clsact-hooked uplink on
# "make NAME UPLINK", removes them on "drop NAME", answers "ok" each time.
THEIRS = """
import subprocess, sys
from pyroute2 import IPRoute
from chadthrottle.helper.kernel.tc_ownership import TcJournal
ipr = IPRoute()
journal = TcJournal(ipr, instance="another-session")
uplinks = {}
def ip(*argv):
    subprocess.run(["ip", *argv], check=True)
def tc(*argv):
    subprocess.run(["tc", *argv], check=True)
for line in sys.stdin:
    command, name, *rest = line.split()
    if command == "make":
        uplink = rest[0]
        index = ipr.link_lookup(ifname=uplink)[0]
        uplinks[name] = (uplink, index)
        journal.ifb(index, uplink, name)
        ip("link", "add", name, "type", "ifb")
        tc("qdisc", "add", "dev", name, "root", "handle", "c7ad:", "htb")
        journal.hook(index, uplink, 0xFFFFFFF2, True)
        tc("qdisc", "add", "dev", uplink, "clsact")
    else:
        uplink, index = uplinks.pop(name)
        tc("qdisc", "del", "dev", uplink, "clsact")
        ip("link", "del", name)
        journal.forget_hook(index)
    print("ok", flush=True)
journal.close()
"""

# The inner session's one test: waits while the other session drops what it
# had when this session began and makes another; LEAK: leaves its own behind.
INNER = """
import os, pathlib, subprocess, time
def test_beside_another_session():
    pathlib.Path(os.environ["INNER_STARTED"]).touch()
    done = pathlib.Path(os.environ["THEIRS_MOVED"])
    deadline = time.monotonic() + {guard}
    while not done.exists():
        assert time.monotonic() < deadline, "the other session never moved"
        time.sleep(0.05)
    if os.environ.get("LEAK"):
        subprocess.run(["ip", "link", "add", os.environ["LEAK"], "type", "ifb"], check=True)
        subprocess.run(["tc", "qdisc", "add", "dev", "ctleakup", "clsact"], check=True)
"""


def _ifb_name() -> str:
    return f"ctifb{secrets.token_hex(4)}"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test's own, with two uplinks (veth: the machine's
    devices, there before either session)."""
    require_root()
    name = f"ctleaktc-{secrets.token_hex(3)}"
    _add_netns(name)
    try:
        for uplink in ("ctleakup", "cttheirone", "cttheirtwo"):
            subprocess.run(["ip", "-n", name, "link", "add", uplink, "type", "veth", "peer",
                            "name", f"{uplink}p"], check=True)  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        MADE_NAMESPACES.discard(name)


def _say(theirs: subprocess.Popen[str], line: str) -> None:
    assert theirs.stdin is not None and theirs.stdout is not None
    theirs.stdin.write(line + "\n")
    theirs.stdin.flush()
    assert theirs.stdout.readline() == "ok\n", f"the other session's shaper failed at {line!r}"


def _inner_session(namespace: str, tmp_path: Path, leak: str) -> tuple[int, str]:
    """Run a pytest session in the namespace beside another session's shaper
    that holds an IFB and a clsact when it begins, drops them and makes
    others (on another uplink) meanwhile; its exit status and output."""
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(INNER.format(guard=GUARD_S)))
    started, moved = tmp_path / "started", tmp_path / "moved"
    env_theirs = {
        "CHADTHROTTLE_TEST_SESSION": "another-session",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    theirs = subprocess.Popen(
        nsenter_argv(namespace, [sys.executable, "-c", THEIRS]), cwd=REPO, env=env_theirs,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    first, second = _ifb_name(), _ifb_name()
    try:
        _say(theirs, f"make {first} cttheirone")
        inner = subprocess.Popen(
            nsenter_argv(namespace, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                     "-p", "tests.conftest", "--rootdir", str(REPO), "-c",
                                     str(REPO / "pyproject.toml"), str(test_file)]),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**_environment(), "INNER_STARTED": str(started), "THEIRS_MOVED": str(moved),
                 "LEAK": leak},
        )  # fmt: skip
        try:
            _wait_for(started, inner)
            _say(theirs, f"drop {first}")
            _say(theirs, f"make {second} cttheirtwo")
            moved.touch()
            output, _ = inner.communicate(timeout=GUARD_S)
        finally:
            if inner.poll() is None:
                inner.kill()
                inner.wait()
        assert first not in output and second not in output, output
        assert "dev cttheir" not in output, output  # their clsacts
        return inner.returncode, output
    finally:
        _say(theirs, f"drop {second}")
        assert theirs.stdin is not None
        theirs.stdin.close()
        theirs.wait(GUARD_S)
        if theirs.stdout is not None:
            theirs.stdout.close()


def _environment() -> dict[str, str]:
    import os

    return dict(os.environ)


def _wait_for(path: Path, inner: subprocess.Popen[str]) -> None:
    import time

    deadline = time.monotonic() + GUARD_S
    while not path.exists():
        assert inner.poll() is None, inner.communicate()[0]
        assert time.monotonic() < deadline, f"the inner session did not start in {GUARD_S:.0f} s"
        time.sleep(0.05)


def test_another_sessions_ifb_and_clsact_are_not_this_sessions_leak(
    namespace: str, tmp_path: Path
) -> None:
    status, output = _inner_session(namespace, tmp_path, leak="")
    assert status == 0 and "left state behind" not in output, output


def test_this_sessions_own_ifb_and_clsact_are_caught(namespace: str, tmp_path: Path) -> None:
    ours = _ifb_name()
    status, output = _inner_session(namespace, tmp_path, leak=ours)
    assert status != 0 and "left state behind" in output, output
    assert ours in output and "clsact ffff: dev ctleakup" in output, output
