"""``chadthrottle-helper build-cache``: the BPF programs built into the program
cache for the running kernel, and nothing else.

The helper takes its bus name only once its engine (and so the programs) is
built; a first start with nothing stored compiles them (seconds; more than
dbus-daemon's 25 s activation timeout was seen at load 9), and the client that
started it got a timeout. The Debian package's postinst runs this, so the
first start after an install or upgrade loads them from the cache.

It goes the way a start does (Datapath.load_programs: the one-way reading's
set, the plain one where the kernel or compiler refuses it, refusals
remembered) and loads the set to let the verifier judge it, but attaches
nothing and connects to no bus: the loaded maps and programs are closed (and
so freed) before it returns, as bcc's build child's are when it exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("chadthrottle.helper.build_cache")

COMMAND = "build-cache"
# The datapath is never attached here: it needs no cgroup (and an install's
# chroot may have no cgroup2 mounted to find).
_NOT_ATTACHED = Path("/")


def add_build_cache_command(commands: Any) -> None:
    """The build-cache subparser, on the helper's argument parser."""
    commands.add_parser(
        COMMAND,
        help="build the BPF programs into --cache-dir for the running kernel and exit "
        "(attaches nothing; for the package's postinst)",
    )


def build_program_cache(cache_dir: Path, stopping: threading.Event | None = None) -> str:
    """Make what a start loads be in cache_dir; the line that says what was done.
    BackendUnavailable (or StartCancelled once stopping is set) when it cannot."""
    # Imported here, as the engine is: --help must not need pyroute2 or bcc.
    from chadthrottle.helper.kernel.datapath import Datapath

    datapath = Datapath(_NOT_ATTACHED, cache_dir, stopping)
    try:
        datapath.load_programs()  # as a start loads them, attached nowhere
        why = datapath.one_way_off
        without = f", without the one-way reading ({why})" if why else ""
        origin = "already in" if datapath.program_origin == "cache" else "compiled into"
        return f"the BPF programs are {origin} {cache_dir}{without}"
    finally:
        datapath.close()  # the loaded maps and programs, attached nowhere, are freed


def run_build_cache(arguments: argparse.Namespace, stopping: threading.Event) -> int:
    """The command; 1 with the reason on stderr when it failed (the first
    start then compiles, as without it)."""
    from chadthrottle.helper.errors import HelperError

    try:
        said = build_program_cache(arguments.cache_dir, stopping)
    except HelperError as error:
        print(f"chadthrottle-helper: {COMMAND}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        log.exception("%s failed", COMMAND)
        print(f"chadthrottle-helper: {COMMAND} failed: {error}", file=sys.stderr)
        return 1
    log.info("%s", said)
    return 0
