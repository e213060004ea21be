"""The Debian package test's slow preparation, started early.

Building the package (12-17 s), making the clean root (unpacking it, 4-9 s; on
a fresh clone debootstrap first, 35-55 s) and `apt install` of the package in
it (20-35 s) start as soon as the session's tests are collected, in two
threads, instead of when test_debian_package.py begins: the module comes last,
and the suite's other tests spend most of their time waiting on traffic. While
other tests are selected the threads run at the lowest CPU priority (nice 19,
which the programs they start inherit), so those tests keep the processor they
had. The checks in the installed root (traffic under a limit) stay in the
module. The module's fixtures take what was made, and delete it when the module
ends; or the session's end does, if the module never ran. (The hooks are in
tests/packaging/conftest.py; the state is here, as pytest imports a conftest.py
under another name than a test module that imports it.)

scripts/run-tests starts the build itself, beside install-deps, when the
module is among its targets, and names its folder in PREBUILT_VARIABLE: the
same packaging/debian/build on the same tree, done before the lanes begin
(in CI's runs the module's first test waited 29.5 s for it, alone in its
lane). The module then takes that package; a prebuild that failed is made
again here, so a failure is the build's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

from chadthrottle.helper.busname import wait_for_bus_name
from chadthrottle.helper.standalone import POLKIT_BUS_NAME, PrivateSystemBus

from tests.support import fresh_debian_root

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "packaging" / "debian" / "build"
LOG = REPO_ROOT / "artifacts" / "fresh-root" / "last-run.log"
# scripts/run-tests' prebuild: a folder where the build's stdout goes to "path",
# its stderr to "log", and its exit status to "status" once it ended.
PREBUILT_VARIABLE = "CHADTHROTTLE_TEST_PREBUILT_DEB"
BUILD_TIMEOUT_S = 900
Made = TypeVar("Made")


class Installed(NamedTuple):
    root: Path
    # The install once stopped every polkitd on the machine (its maintainer
    # script saw them all through /proc): one ran beside it, and still runs?
    host_polkitd_alive: bool


class Preparation:
    """The package build and the clean root, each in a thread of its own."""

    def __init__(self, build: bool, root: bool, lowly: bool) -> None:
        """root: a clean root with the package installed (needs build)."""
        self._cleanup = contextlib.ExitStack()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="package-preparation")
        self._out = Path(tempfile.mkdtemp(prefix="chadthrottle-test-deb-"))
        self._cleanup.callback(shutil.rmtree, self._out, ignore_errors=True)
        self._lowly = lowly
        self.deb: Future[Path] | None = self._pool.submit(self._run, self._build) if build else None
        self.root: Future[Installed] | None = None
        if root and self.deb is not None:
            LOG.parent.mkdir(parents=True, exist_ok=True)
            LOG.write_text("")
            self.root = self._pool.submit(self._run, self._install)

    def _run(self, make: Callable[[], Made]) -> Made:
        if self._lowly:  # this thread only; what it starts inherits it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        return make()

    def _build(self) -> Path:
        prebuilt = _prebuilt()
        if prebuilt is not None:
            return prebuilt
        result = subprocess.run(
            [str(BUILD), str(self._out)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"packaging/debian/build failed:\n{result.stderr[-4000:]}"
        return Path(result.stdout.strip().splitlines()[-1])

    def _install(self) -> Installed:
        root = self._cleanup.enter_context(fresh_debian_root.fresh_root(LOG))
        assert self.deb is not None
        deb = self.deb.result()
        with PrivateSystemBus() as bus:
            fresh_debian_root.apt_install(root, deb, LOG)
            return Installed(root, wait_for_bus_name(bus.address, POLKIT_BUS_NAME, 2.0))

    def close(self) -> None:
        """Wait for the threads, however they finish, then delete what they made."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._cleanup.close()


def _prebuilt() -> Path | None:
    """The package scripts/run-tests built for this run, once its build ended;
    None if there is none, or it failed (the module builds it, and says why)."""
    folder = os.environ.get(PREBUILT_VARIABLE)
    if not folder:
        return None
    status = Path(folder) / "status"
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not status.exists():
        assert time.monotonic() < deadline, f"the prebuild in {folder} ran {BUILD_TIMEOUT_S} s"
        time.sleep(0.2)
    said = (Path(folder) / "path").read_text().strip().splitlines()
    if status.read_text().strip() != "0" or not said or not Path(said[-1]).is_file():
        return None
    return Path(said[-1])


_started: list[Preparation] = []
_deferred: list[tuple[bool, bool, bool]] = []


def started() -> Preparation | None:
    """The session's preparation, if its tests were selected; a deferred one
    starts now (its lane runs the module)."""
    if not _started and _deferred:
        _started.append(Preparation(*_deferred.pop()))
    return _started[0] if _started else None


def start(build: bool, root: bool, lowly: bool, *, defer: bool = False) -> None:
    """defer: only when the module asks (started()). In a lane of a split run
    every lane collects every test, but one runs the module: both began the
    build and the root, and their debootstraps raced for one tarball (CI
    2026-12-06: FileNotFoundError renaming its .tar.partial)."""
    if defer:
        _deferred.append((build, root, lowly))
    else:
        _started.append(Preparation(build, root, lowly))


def close_all() -> None:
    _deferred.clear()
    while _started:
        _started.pop().close()
