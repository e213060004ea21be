"""The helper as the tests start it: standalone.HelperProcess, whose start
timeout covers the helper's own start only, not what it may wait for.

A start may first compile the BPF programs (the cache is keyed by every file in
bpf/, which other engineers edit in a shared tree; a fresh CI clone has no cache
at all) and may wait for the machine lock (ownership.py: while a benchmark holds
it no datapath starts, for up to LOCK_TIMEOUT_S). Under load a start that
compiled took more than the 30 s start timeout, and the module's tests errored
in set-up. So the compile happens here first, bounded by the build's own
timeout (program_cache.BUILD_TIMEOUT_S), the lock is waited for here and held
(shared, as a datapath holds it) until the helper owns its bus name, and only
that is timed. A start that compiled on 2 cores at load 3: 1.3-2.1 s, with the
programs cached 0.4 s (docs/development.md, *Suite time*).

A test's helper lets its tc hooks go with their last class (--hook-linger-s 0,
TESTS_HOOK_LINGER_S): the product's 2 s linger (tc_shaper.HOOK_LINGER_S)
added that much to every wait for a clean state after a clear, in most
end-to-end modules. A test of the linger asks for the product's
(hook_linger_s=PRODUCT_HOOK_LINGER, or HELPER_HOOK_LINGER_S in a module using
the `stack` fixture); test_toggled_limit_keeps_its_hook.py checks it is 2 s.

Where PYTHONDONTWRITEBYTECODE is set (CI's clone had no bytecode of its own
modules), every helper start compiled each chadthrottle module it imports
from source (0.46-0.51 s of CPU for the imports against 0.33 with bytecode):
a test's helper writes and reads its bytecode in a directory of the
session's (PYTHONPYCACHEPREFIX), removed when the session ends; the tree
stays without it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chadthrottle.helper import standalone
from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR

from tests.support import held_records

TESTS_HOOK_LINGER_S = 0.0
PRODUCT_HOOK_LINGER = None  # no --hook-linger-s: the helper's own default
# The tests (by the one running at the helper's close) whose helper shaped the
# machine's own network namespace, i.e. grafted a clsact on its eth0: a limited
# application of theirs had a process there. The session fails on them
# (tests/conftest.py): test traffic goes only over loopback and the project's
# own namespaces, and two such helpers at once left an empty clsact (clsact34).
SHAPED_THE_MACHINE: list[str] = []


_BYTECODE_DIR: list[str] = []  # the session's, made at the first helper start


def bytecode_env() -> list[str]:
    """`env` arguments that give a helper the session's bytecode directory,
    where bytecode is not written next to the sources (none elsewhere)."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return []
    if not _BYTECODE_DIR:
        _BYTECODE_DIR.append(tempfile.mkdtemp(prefix="chadthrottle-test-pyc-"))
        atexit.register(shutil.rmtree, _BYTECODE_DIR[0], True)
    return ["env", "-u", "PYTHONDONTWRITEBYTECODE", f"PYTHONPYCACHEPREFIX={_BYTECODE_DIR[0]}"]


_READY: set[tuple[object, ...]] = set()  # stamps of what ready_programs found ready


def _stamp(cache_dir: Path, source_dir: Path) -> tuple[object, ...]:
    """The stored set's and every source file's identity and change time: the
    same stamp, the same set (a store replaces the file: a new inode)."""
    from chadthrottle.helper.kernel.program_cache import CACHE_FILE

    paths = [cache_dir / CACHE_FILE, *sorted(source_dir.iterdir())]
    return tuple(
        (str(p), st.st_ino, st.st_size, st.st_mtime_ns) for p in paths for st in [p.stat()]
    )


def ready_programs(cache_dir: Path) -> str:
    """Build the program set into cache_dir unless it is there for the
    current bpf/, kernel and bcc, as the helper would; "cache" or "built".
    Checked once while neither the stored set nor bpf/ changes (0.08-0.1 s
    of the test process's at each of a session's ~100 helper starts). Where
    this kernel refused the set with the upload's one-way reading (remembered
    in its place: program_cache.KnownRefused), the set without it, which the
    helper loads there (datapath.Datapath.open): read as a failure, every
    helper start after the first failed in set-up on such a machine."""
    from chadthrottle.helper.kernel.program_build import (
        bpf_source_dir,
        compile_flags,
        without_one_way,
    )
    from chadthrottle.helper.kernel.program_cache import (
        PLAIN_CACHE_FILE,
        KnownRefused,
        obtain_program_set,
    )

    source_dir = bpf_source_dir()
    before: tuple[object, ...] = ()
    with contextlib.suppress(OSError):
        before = _stamp(cache_dir, source_dir)
    if before in _READY:
        return "cache (as at the last start)"
    flags = compile_flags(source_dir)
    try:
        _set, origin = obtain_program_set(cache_dir, source_dir, flags)
    except KnownRefused:
        _set, origin = obtain_program_set(
            cache_dir, source_dir, without_one_way(flags), name=PLAIN_CACHE_FILE
        )
        origin += " (without the one-way reading: refused here)"
    with contextlib.suppress(OSError):
        if before and _stamp(cache_dir, source_dir) == before:  # nothing changed while checked
            _READY.add(before)
    return origin


class HelperProcess(standalone.HelperProcess):
    def __init__(
        self, bus_address: str, hook_linger_s: float | None = TESTS_HOOK_LINGER_S, **options: Any
    ) -> None:
        super().__init__(bus_address, **options)
        if hook_linger_s is not None:
            self.command += ["--hook-linger-s", str(hook_linger_s)]
        python = self.command.index(sys.executable)
        self.command[python:python] = bytecode_env()
        # A test that names a cache directory manages it (an empty one makes the
        # helper compile, as on a first start): not built for it here.
        self._shared_cache = options.get("cache_dir") is None

    def close(self) -> None:
        """As the product's; and a helper that ended by SIGKILL (a test's kill(),
        or stop()'s after its timeout) has the programs its record lists
        detached from the cgroup root, and the tc objects its journals record
        in this process's namespace (the machine's own) removed, as its
        successor's start would. A test that failed between the kill and that
        start left them past the session (the product removes them only at a
        helper's start): one whose limited application lived in the machine's
        namespace left its clsact, filter and IFB on eth0. Not in the test's
        namespaces: they go with the test, and a successor adopts there what
        the killed helper left (test_lingering_hook_after_sigkill.py). Its
        held-caps record goes once nobody's (tests/support/held_records.py).
        One with no state directory of its own ran as the product's default
        instance, whose leftovers are the product's: none is swept, and the
        close fails (review38 H3)."""
        super().close()
        machine = f"shaping in namespace net:[{os.stat('/proc/self/ns/net').st_ino}]"
        if machine in self.log_text():
            SHAPED_THE_MACHINE.append(os.environ.get("PYTEST_CURRENT_TEST", "?").split(" (")[0])
        if self.returncode == -signal.SIGKILL and self.state_dir is None:
            raise RuntimeError(
                "a SIGKILLed test helper with no state_dir of its own: its leftovers are not "
                "swept, as its instance is the product's default (give the test a state_dir)"
            )
        if self.returncode == -signal.SIGKILL:
            from chadthrottle.helper.kernel.cgroups import cgroup2_mount
            from chadthrottle.helper.kernel.datapath import remove_leftover_programs
            from chadthrottle.helper.kernel.ownership import journal_instance
            from chadthrottle.helper.kernel.tc_shaper import remove_unadopted
            from pyroute2 import IPRoute

            assert self.state_dir is not None
            instance = journal_instance(self.state_dir)
            remove_leftover_programs(cgroup2_mount(), instance)  # its own, not another's
            with IPRoute() as ipr:  # this process's namespace: the machine's own
                remove_unadopted(ipr, instance)
            held_records.killed_closed(instance)  # its caps record, once nobody's

    def start(self) -> None:
        """Programs built and machine lock free first, untimed; then the
        helper's start within its start timeout."""
        from chadthrottle.helper.kernel.ownership import acquire_shared

        began = time.monotonic()
        origin = ready_programs(DEFAULT_CACHE_DIR) if self._shared_cache else "helper's own cache"
        lock = acquire_shared()
        before = (
            f"before the timed start: programs from the {origin}, "
            f"{time.monotonic() - began:.1f} s with the machine lock"
        )
        try:
            super().start()
        except standalone.StandaloneError as error:
            raise standalone.StandaloneError(f"{error}\n({before})") from None
        finally:
            os.close(lock)
