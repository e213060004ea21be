"""Shared pytest fixtures. Keep each area's fixtures in its own block."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest
from chadthrottle.helper.standalone import POLKITD, PrivateSystemBus

from tests.support.requirements import require, require_program, require_root

# ---------------------------------------------------------------------------
# D-Bus and polkit (helper adapter, CLI): a private system bus with a real
# polkitd, shared by the whole session because polkitd takes a moment to start.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def private_bus() -> Iterator[PrivateSystemBus]:
    """A running PrivateSystemBus (dbus-daemon + polkitd + our polkit actions).
    Torn down at the end of the session, also when tests fail."""
    require_root()
    require_program("dbus-daemon")
    require(POLKITD.exists(), f"needs polkitd at {POLKITD}")
    with PrivateSystemBus() as bus:
        yield bus


@pytest.fixture
def system_bus_env(private_bus: PrivateSystemBus, monkeypatch: pytest.MonkeyPatch) -> str:
    """DBUS_SYSTEM_BUS_ADDRESS pointing at the private bus for this test; returns it."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private_bus.address)
    return private_bus.address


# --- end of D-Bus and polkit fixtures ---------------------------------------


# ---------------------------------------------------------------------------
# Where a run's time went: each test's lane and start in the JUnit file
# (scripts/lane_times.py reads them: each lane's sum and span, the gaps).
# ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    lane = getattr(item.config, "workerinput", {}).get("workerid", "main")
    item.user_properties += [("lane", lane), ("started", f"{time.time():.3f}")]
    _TEST_BEGAN[0] = time.monotonic()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Every lane collects every test module, and pytest rewrites each one's
    asserts on import (about 14 s of CPU for ~400 modules, no bytecode yet in
    a fresh clone): both lanes did all of it, side by side, before the first
    test. A lane other than gw0 rewrites the modules in reverse order first,
    while gw0 collects forward, each then finding the other's half written.
    Best effort: any surprise from pytest's internals leaves it to the
    collection, as before."""
    worker = getattr(session.config, "workerinput", {}).get("workerid", "gw0")
    if worker == "gw0" or sys.dont_write_bytecode:
        return
    try:
        _rewrite_in_reverse(session.config)
    except Exception:
        return


def _rewrite_in_reverse(config: pytest.Config) -> None:
    """What pytest's import hook does for a test module (AssertionRewritingHook
    .exec_module: read the cached rewritten pyc, else rewrite and write it,
    atomically), for every test module and conftest.py under the run's
    arguments, last first."""
    from pathlib import Path

    from _pytest.assertion import assertstate_key, rewrite

    state = config.stash[assertstate_key]
    roots = [Path(config.rootpath, arg.split("::")[0]) for arg in config.args]
    modules = sorted(
        {
            module
            for root in roots
            for module in ([root] if root.is_file() else root.rglob("*.py"))
            if module.suffix == ".py"
            and (module.name == "conftest.py" or module.name.startswith("test_"))
        }
    )
    for module in reversed(modules):
        cache_dir = rewrite.get_cache_dir(module)
        if not rewrite.try_makedirs(cache_dir):
            return
        pyc = cache_dir / (module.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(module, pyc, state.trace) is None:
            source_hash, code = rewrite._rewrite_test(module, config)
            rewrite._write_pyc(state, code, source_hash, pyc)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files that hold machine_alone tests, where scripts/run-tests asks
    for them (CHADTHROTTLE_ALONE_FILES, before the lanes deselect them): its
    alone phase then collects those files, not the whole suite again (about
    4 s of the run's serial part in CI, against 1-2 s). Taken out of the
    environment: a pytest a test starts must not write the run's list."""
    path = os.environ.pop("CHADTHROTTLE_ALONE_FILES", None)
    if not path or getattr(config, "workerinput", {}).get("workerid", "gw0") != "gw0":
        return
    files = {
        item.nodeid.split("::")[0] for item in items if item.get_closest_marker("machine_alone")
    }
    with open(f"{path}.part", "w") as out:
        out.writelines(f"{file}\n" for file in sorted(files))
    os.replace(f"{path}.part", path)


# ---------------------------------------------------------------------------
# Nothing left behind: the machine must end the session as it began it.
# ---------------------------------------------------------------------------

_MACHINE_BEFORE: dict[str, object] = {}
_LANES_LEFT: list[str] = []  # what the lanes of a split run (pytest-xdist workers) left
_LANES_SHAPED: list[str] = []  # their tests whose helper shaped the machine's own namespace
_TEST_BEGAN = [0.0]  # the running test's setup (monotonic)


def _is_lane(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Once the test's fixtures removed its namespaces: the caps records of
    the SIGKILLed helpers it closed go when nobody's (their maps gone)."""
    from tests.support import held_records

    yield
    if held_records.KILLED:
        held_records.sweep_killed(held_records.TEST_END_WAIT_S, _TEST_BEGAN[0])


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests.support import leaks, own_names

    # Every process this session starts carries it: leaks.py tells them apart.
    # A lane is a session of its own (own_names is imported afresh in it).
    os.environ[own_names.SESSION_ENV] = own_names.SESSION_TAG
    leaks.settle_abandoned_policy()
    _MACHINE_BEFORE.update(leaks.snapshot(machine_wide=not _is_lane(session.config)))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """A lane ended (pytest-xdist, in the controller): keep what it left."""
    _LANES_LEFT.extend(getattr(node, "workeroutput", {}).get("left_behind", []))
    _LANES_SHAPED.extend(getattr(node, "workeroutput", {}).get("shaped_the_machine", []))


def _shaped_the_machine() -> list[str]:
    """This session's tests whose helper shaped the machine's own namespace
    (tests/support/helper_process.py; not imported: no helper started)."""
    import sys

    module = sys.modules.get("tests.support.helper_process")
    return list(getattr(module, "SHAPED_THE_MACHINE", []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support import held_records, leaks

    held_records.stop_watching()  # the last sweep waits itself: no thread past the session
    if not _MACHINE_BEFORE:
        return
    lane = _is_lane(session.config)
    if held_records.KILLED:
        held_records.sweep_killed(held_records.SESSION_WAIT_S)
    after = leaks.settled(_MACHINE_BEFORE, leaks.snapshot(machine_wide=not lane))
    found = leaks.differences(_MACHINE_BEFORE, after)
    if lane:  # the controller reports it: a lane's own exit status is not the run's
        name = session.config.workerinput["workerid"]  # type: ignore[attr-defined]
        session.config.workeroutput["left_behind"] = [f"lane {name}: {f}" for f in found]  # type: ignore[attr-defined]
        session.config.workeroutput["shaped_the_machine"] = _shaped_the_machine()  # type: ignore[attr-defined]
        return
    found += _LANES_LEFT
    # a failure: docs/development.md, "Tests do not shape the machine's own network namespace"
    found += [
        f"its helper shaped the machine's own network namespace (a clsact on its eth0; run its "
        f"limited applications in the test's namespaces): {test}"
        for test in sorted(set(_shaped_the_machine() + _LANES_SHAPED))
    ]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if found:
        message = "the test session left state behind:\n  " + "\n  ".join(found)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
