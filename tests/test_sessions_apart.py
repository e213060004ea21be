"""Test sessions that run at once on one machine (several engineers, a
screenshot script) must not share an application. A helper's rule reaches
an application's processes in every network namespace, so with one shared
traffic program one session's helper shaped the other session's streams: its
filter sat on their veth, where their own helper's tc add-filter then failed
with "File exists" (SetLimit answered it) and an upload stalled. The traffic
program's application id is its script's path."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support import own_names

REPO = Path(__file__).parents[1]
# One session: starts the traffic program, reads its id as the helper does, exits.
SESSION = """
import json, subprocess, sys
from chadthrottle.helper.identity.applications import identify
from chadthrottle.helper.identity.processes import read_process
from tests.support.netns import TRAFFIC_SCRIPT
app = subprocess.Popen([sys.executable, str(TRAFFIC_SCRIPT), "serve", "--port", "0", "--role", "sink",
                        "--seconds", "5"], stdout=subprocess.PIPE, text=True)
try:
    assert "listening" in app.stdout.readline()
    print(json.dumps([identify(read_process(app.pid)).app_id, str(TRAFFIC_SCRIPT)]))
finally:
    app.kill()
    app.wait()
"""


def _session() -> tuple[str, Path]:
    done = subprocess.run(
        [sys.executable, "-c", SESSION], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    app_id, script = json.loads(done.stdout)
    return app_id, Path(script)


def test_two_sessions_traffic_programs_are_two_applications_and_leave_nothing() -> None:
    (first, first_script), (second, second_script) = _session(), _session()
    assert first.startswith("script:") and first.endswith(
        "/traffic.py"
    )  # what tests/e2e read it as
    assert first != second
    assert (
        not first_script.exists() and not second_script.parent.exists()
    )  # removed at the session's exit


def test_a_killed_sessions_copy_goes_with_the_next_session() -> None:
    """A session killed before its exit handlers ran (SIGKILL, a timeout's
    SIGTERM) left its copy in the temporary directory."""
    code = (
        "import time; from tests.support.netns import TRAFFIC_SCRIPT; "
        "print(TRAFFIC_SCRIPT, flush=True); time.sleep(60)"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert killed.stdout is not None
        script = Path(killed.stdout.readline().strip())
        assert script.exists()
    finally:
        killed.kill()
        killed.wait()
    assert script.exists()
    _session()
    assert not script.parent.exists()


# Where a test's application runs under a session's helper: its desktop id must
# come from tests/support/own_names.py (the tag), not be spelt in the test.
_SPELT_ID = re.compile(r"(?:^|[^\w.])(?:app:)?org\.chadthrottle\.[A-Za-z{]")
# Benches too: one beside a test session (or another bench) with a fixed id
# was one application with it.
_CHECKED = ("tests/e2e", "tests/helper/kernel", "tests/support", "bench")


def _spelt_desktop_ids(path: Path) -> list[str]:
    """String constants (f-strings' parts too, not docstrings) that begin a
    desktop id of ours: org.chadthrottle.<Name>."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and _SPELT_ID.search(node.value)
    ]


def test_end_to_end_and_kernel_tests_take_their_desktop_ids_from_own_names() -> None:
    """The same test in two sessions with a fixed desktop id was one
    application: each helper counted or shaped the other's copy."""
    files = [
        path
        for checked in _CHECKED
        for path in (
            (REPO / checked).rglob("*.py") if (REPO / checked).is_dir() else [REPO / checked]
        )
        if path.name != "own_names.py"
    ]
    assert len(files) > 40
    spelt = [spelt for path in files for spelt in _spelt_desktop_ids(path)]
    assert spelt == [], "use tests.support.own_names.desktop_id(NAME) / app_id(NAME) for these"


def _shapers_of_no_instance(path: Path) -> list[str]:
    """Calls that make a tc shaper or sweep a killed one's journal without
    saying whose: TcShaper without instance=, remove_unadopted without its
    instance."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        given = len(node.args) > 1 or any(k.arg == "instance" for k in node.keywords)
        if (name == "TcShaper" and not any(k.arg == "instance" for k in node.keywords)) or (
            name == "remove_unadopted" and not given
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return found


def test_tests_make_their_shapers_under_this_sessions_journal_instance() -> None:
    """Shapers made with the default instance ("") wrote journals every
    session's scan opened: one session's scan held another's killed shaper's
    journal locked the moment that session swept it (CI h2, test_catch_all:
    0 of 2 removed). Benches' shapers run beside test sessions too."""
    files = [*(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")]
    assert len(files) > 150
    found = [call for path in files for call in _shapers_of_no_instance(path)]
    assert found == [], "give these instance=own_names.JOURNAL_INSTANCE"


def test_desktop_ids_are_one_per_name_in_a_session_and_another_in_the_next() -> None:
    code = "from tests.support import own_names as o; print(o.desktop_id('X'), o.desktop_id('X'))"

    def session() -> list[str]:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=30, check=True)  # fmt: skip
        return done.stdout.split()

    (first, again), (other, _) = session(), session()
    assert first == again != other and first.startswith("org.chadthrottle.X")
    assert own_names.desktop_id("X", fresh=True) != own_names.desktop_id("X", fresh=True)


def test_the_leak_check_sees_this_sessions_leftovers_and_not_another_sessions() -> None:
    """Another session's namespaces, cgroups and daemons come and go while this
    one runs: they failed a session that had left nothing (tests/support/leaks.py)."""
    import os
    import secrets

    from chadthrottle.helper.kernel.cgroups import cgroup2_mount

    from tests.support import leaks, netns
    from tests.support.requirements import require_root

    require_root()
    tag = secrets.token_hex(3)
    before = leaks.snapshot()
    ours_ns, theirs_ns = f"ctleak-ours-{tag}", f"ctleak-theirs-{tag}"
    ours_cg = cgroup2_mount() / f"{own_names.TEST_NAME_PREFIX}leak{tag}.slice"
    theirs_cg = cgroup2_mount() / f"chadthrottle-test-{tag}-leak.slice"
    daemon = [sys.executable, "-c", "import time; time.sleep(60)", "chadthrottle.helper.main"]
    # a traffic program left running (by its arguments: this session's copy)
    sink = [sys.executable, "-c", "import time; time.sleep(60)", str(netns.TRAFFIC_SCRIPT), tag]
    env = {**os.environ, own_names.SESSION_ENV: own_names.SESSION_TAG}
    theirs_env = {**env, own_names.SESSION_ENV: tag}
    processes = [
        subprocess.Popen(argv, env=e) for argv in (daemon, sink) for e in (env, theirs_env)
    ]
    try:
        netns._add_netns(ours_ns)
        subprocess.run(["ip", "netns", "add", theirs_ns], check=True)
        ours_cg.mkdir()
        theirs_cg.mkdir()
        found = "\n".join(leaks.differences(before, leaks.snapshot()))
        assert ours_ns in found and ours_cg.name in found, found
        assert theirs_ns not in found and theirs_cg.name not in found, found
        daemons = next(line for line in found.splitlines() if line.startswith("daemons"))
        before_count = str(before["daemons"]).count("python")
        assert daemons.split("after")[1].count("python") == before_count + 1, daemons
        traffic = next(line for line in found.splitlines() if line.startswith("traffic"))
        assert traffic.split("after")[1].count(f"traffic.py {tag}") == 1, traffic
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for name in (ours_ns, theirs_ns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for cgroup in (ours_cg, theirs_cg):
            if cgroup.exists():
                cgroup.rmdir()


def test_end_to_end_tests_start_the_helper_through_tests_support() -> None:
    """tests/support/helper_process.py compiles the programs and waits for the
    machine lock before the helper's timed start; started directly, a start
    that compiled under load took more than its 30 s."""
    direct = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted((REPO / "tests/e2e").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and node.module == "chadthrottle.helper.standalone"
        and any(alias.name == "HelperProcess" for alias in node.names)
    ]
    assert direct == [], "import HelperProcess from tests.support.helper_process"


HOLD_THE_POLICY = """
import sys
from chadthrottle.helper.standalone import polkit_policy_install
held = polkit_policy_install()
held.acquire()
print("held", flush=True)
sys.stdin.read()
held.release()
"""


def test_the_leak_check_counts_the_policy_file_only_while_this_session_holds_it() -> None:
    """A private bus installs our polkit actions file for as long as any bus
    on the machine needs it, so a session ending beside another's bus found
    the file "left behind" (and one starting beside it, "removed")."""
    import os

    from chadthrottle.helper.standalone import POLICY_FILE, POLKIT_ACTIONS_DIR
    from chadthrottle.helper.standalone_policy import DEFAULT_STATE_DIR, holder_pids

    from tests.support import leaks
    from tests.support.requirements import require_root

    require_root()
    env = {**os.environ, own_names.SESSION_ENV: own_names.SESSION_TAG}

    def holding(session_env: dict[str, str]) -> tuple[list[str], bool]:
        """What the check counts while a process of that session holds the
        file, and whether a bus of yet another session holds it too."""
        holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_POLICY], cwd=REPO, env=session_env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            assert (POLKIT_ACTIONS_DIR / POLICY_FILE).exists()
            others = [
                pid
                for pid in holder_pids(DEFAULT_STATE_DIR / POLICY_FILE)
                if pid != holder.pid and not leaks._of_this_session(pid)
            ]
            return leaks._polkit_actions(), bool(others)
        finally:
            holder.communicate("", timeout=30)

    assert holding({**env, own_names.SESSION_ENV: "another-session"})[0] == []
    counted, others_hold = holding(env)
    assert counted == ([] if others_hold else [POLICY_FILE])


def test_a_session_starts_from_the_policy_file_a_killed_bus_had_replaced() -> None:
    """A private bus killed outright (CI 2026-12-06: a run killed mid-way)
    left our actions file installed and its backup "absent"; the next
    session's snapshot counted the file as the machine's, its bus restored
    the absence, and the check failed it ("before [policy], after []")."""
    import os
    import signal

    from chadthrottle.helper.standalone import POLICY_FILE, POLKIT_ACTIONS_DIR
    from chadthrottle.helper.standalone_policy import DEFAULT_STATE_DIR, holder_pids

    from tests.support import leaks
    from tests.support.requirements import require_root

    require_root()
    policy = POLKIT_ACTIONS_DIR / POLICY_FILE
    before = policy.read_bytes() if policy.exists() else None
    held_already = bool(holder_pids(DEFAULT_STATE_DIR / POLICY_FILE))
    env = {**os.environ, own_names.SESSION_ENV: "a-killed-session"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_POLICY], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)
    assert policy.exists()  # SIGKILL ran no release
    # Held by a live bus (this session's), the file stays; else it goes back.
    assert leaks.settle_abandoned_policy() == (not held_already and before is None)
    if not held_already:
        assert (policy.read_bytes() if policy.exists() else None) == before
    assert leaks.settle_abandoned_policy() is False  # nothing left to put back


def test_a_flood_tests_polkit_grant_is_only_its_own_sessions_leftover(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """tests/support/flood.py's rule, written while a flood test runs, failed
    another session's leak check that ran beside it (2026-12-05: a GUI
    session's 'polkit rules: before [], after [10-chadthrottle-flood-...]')."""
    import os

    from tests.support import leaks
    from tests.support.flood import polkit_grant
    from tests.support.requirements import require_root

    require_root()
    with polkit_grant([os.getpid()], ["io.github.chadthrottle.flake7-none"]) as path:
        assert path.name in leaks.snapshot()["polkit rules"]  # this session's
        monkeypatch.setattr(own_names, "TEST_NAME_PREFIX", "chadthrottle-test-000000-")
        assert path.name not in leaks.snapshot()["polkit rules"]  # another session's view


def test_the_leak_check_counts_programs_that_came_not_ones_that_went() -> None:
    """A killed helper's programs (another session's, its record gone) read as
    this session's at its start, and this session's first helper detaches
    them: that failed the session ("before [4 programs], after []")."""
    from tests.support import leaks

    key = "BPF programs on the cgroup root"
    theirs = ["INET_EGRESS:chadt_egress:11", "SOCK_OPS:chadt_sockops:12"]
    ours = ["INET_EGRESS:chadt_egress:21"]
    assert leaks.differences({key: theirs}, {key: []}) == []
    assert leaks.differences({key: theirs}, {key: theirs[:1] + ours}) == [f"{key}: left {ours!r}"]
    assert leaks.differences({"daemons": []}, {"daemons": ["polkitd"]}) != []
