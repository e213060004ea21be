"""This test session's own desktop ids, the one place tests get them from.

Sessions that run at once on one machine (several engineers, CI beside a
benchmark) share the kernel: a helper's counters and rules reach an
application's processes in every network namespace, and an application is its
desktop id. With one fixed id the same test in two sessions was one
application: each helper counted the other's copy too (test_accounting: an
application's bytes 2-3 times the wire) or shaped it (test_unenforced_limits,
the persistence tests: a filter of the other helper at its place, a stalled
download). Namespaces, devices and test cgroups already have random names
(tests/support/netns.py) and the traffic program is a copy of each session's
own (TRAFFIC_SCRIPT); tests/test_sessions_apart.py checks that no end-to-end or
kernel test spells a desktop id of its own.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

SESSION_TAG: Final = secrets.token_hex(3)
# Set in the session's environment (tests/conftest.py), so its daemons and
# helpers carry it: the leak check (leaks.py) tells them from other sessions'.
SESSION_ENV: Final = "CHADTHROTTLE_TEST_SESSION"
# Test cgroups and polkit rules begin with it, for the same reason.
TEST_NAME_PREFIX: Final = f"chadthrottle-test-{SESSION_TAG}-"
# The helper instance (helper/kernel/ownership.journal_instance) of every tc
# shaper a test makes itself, and of its sweeps: a shaper a test kills leaves
# a journal named for this session alone, which another session's scan passes
# over without locking it (a lock held for that moment made the killed
# shaper's own sweep skip it: CI h2, test_catch_all "0 of 2"). A helper process
# has its state directory's, as in the product; tests/test_sessions_apart.py
# checks that no kernel test makes a shaper without it.
JOURNAL_INSTANCE: Final = f"test-session-{SESSION_TAG}"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def desktop_id(name: str, *, fresh: bool = False) -> str:
    """org.chadthrottle.<name><tag>: the same for every call of this session (a
    test may spell it twice, a restarted helper must find it again), another in
    every other session. fresh: another for each call as well, for a test that
    must not meet what an earlier test of its session left under that name
    (usage totals, rules kept by the module's helper). No dash, which would
    end the desktop id inside an app scope's name (app-<launcher>-<id>-<n>)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a desktop id part (a letter, then letters or digits): {name!r}")
    return f"org.chadthrottle.{name}{SESSION_TAG}{secrets.token_hex(3) if fresh else ''}"


def app_id(name: str) -> str:
    """The helper's application id for desktop_id(name): app:<desktop id>."""
    return f"app:{desktop_id(name)}"
