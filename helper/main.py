"""Entry point of the root helper (``chadthrottle-helper``), of its
``install``/``uninstall`` subcommands (helper/install.py) and of
``build-cache`` (helper/build_cache.py: the programs compiled, nothing served).

Order matters: connect to the bus (cheap to fail), build the engine (which
creates kernel objects), export the object, and only then take the bus name,
so a client never reaches a helper that cannot answer. On SIGTERM/SIGINT, or if
anything fails, the name is released and the engine closed, which removes
every kernel object it created. A stop while the engine is still being built
(a cold start compiles for seconds) gives the build up at once: the build
child is killed and reaped, what was made is undone, and the exit is clean
(0). With an idle timeout (D-Bus activation) the helper also stops once it has
had no calls and no limits for that long: the bus starts it again on the next
call.

A helper that replaces a killed one takes over without a gap: the engine
adopts the tc objects the old one left and attaches its programs beside the
old ones, and only TAKEOVER_GRACE_S after the engine has restored the stored
rules (its sockets re-tagged, the adopted filters given the new program at
its next tick) are the old programs detached and any unadopted leftovers
removed (finish_takeover).
"""

# ruff: noqa: E402 (the stop signals are taken before the slow imports)
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

# A stop signalled before the event loop takes the signals over (during the
# imports below, about 0.1 s) is noted here and ends the start cleanly, like one
# that comes later: SIGINT would raise KeyboardInterrupt (a traceback), SIGTERM
# would kill the process (status -15). Installed only in the helper's own
# process (python -m, or the chadthrottle-helper script), not on an import.
_SIGNALLED_EARLY = threading.Event()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _note_stop(_signum: int, _frame: FrameType | None) -> None:
    _SIGNALLED_EARLY.set()


if __name__ == "__main__" or sys.argv[0].rsplit("/", 1)[-1] == "chadthrottle-helper":
    for _signum in STOP_SIGNALS:
        signal.signal(_signum, _note_stop)

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from chadthrottle.arguments import seconds_type
from chadthrottle.bus_connection import connect_system_bus
from chadthrottle.contract import BUS_NAME
from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.adapter.polkit import Authority, CachingAuthority, PolkitAuthority
from chadthrottle.helper.adapter.service import HelperService
from chadthrottle.helper.build_cache import COMMAND as BUILD_CACHE
from chadthrottle.helper.build_cache import add_build_cache_command, run_build_cache
from chadthrottle.helper.engine.api import EngineApi
from chadthrottle.helper.errors import HelperError, LeftInKernel, StartCancelled
from chadthrottle.helper.install import add_install_commands, run_install_command
from chadthrottle.helper.kernel import lean_pyroute2
from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR
from chadthrottle.helper.run_state import RunRecord
from dbus_fast import NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

log = logging.getLogger("chadthrottle.helper.main")

DEFAULT_STATE_DIR = Path("/var/lib/chadthrottle")
BACKENDS = ("auto", "tc", "ebpf")
# dbus-daemon sets this in the environment of a service it activates.
ACTIVATION_ENVIRONMENT = "DBUS_STARTER_BUS_TYPE"
DEFAULT_ACTIVATED_IDLE_EXIT_S = 60.0
# The engine restores the stored rules in its first tick, and the tc shaper
# swaps adopted filters to the new program at the next one (a tick a second):
# the old programs are detached once both have happened.
TAKEOVER_GRACE_S = 1.5
# The idle watch polls every idle_exit_s / 4, but not more often than this: a
# tiny --idle-exit-s (1e-9 is a valid number of seconds) asked the engine
# thread thousands of times a second while a limit kept the helper up.
IDLE_POLL_LEAST_S = 0.05


class StartupError(Exception):
    """The helper cannot run; the message is the one-line reason."""


class ClosableEngine(EngineApi, Protocol):
    def close(self) -> None:
        """Remove every kernel object the engine created."""

    def has_limits(self) -> bool:
        """Whether any limit (stored or set) is in force: then the helper stays."""


async def _wait_until_idle(
    service: HelperService, engine_thread: EngineThread, engine: ClosableEngine, idle_exit_s: float
) -> None:
    """Return once there were no calls for idle_exit_s and no limit is set."""
    poll_s = min(1.0, max(IDLE_POLL_LEAST_S, idle_exit_s / 4))
    while True:
        await asyncio.sleep(poll_s)
        if service.idle_s() >= idle_exit_s and not await engine_thread.run(engine.has_limits):
            log.info("no calls for %.0f s and no limits set: exiting", idle_exit_s)
            return


class _Once:
    """Run a step at most once, from whichever thread asks first; errors are
    logged (the helper serves on without it)."""

    def __init__(self, step: Callable[[], None]) -> None:
        self._step: Callable[[], None] | None = step
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            step, self._step = self._step, None
            if step is None:
                return
            try:
                step()
            except Exception:
                log.exception("finishing the takeover from an earlier helper failed")


async def _after(delay_s: float, step: _Once) -> None:
    await asyncio.sleep(delay_s)
    await asyncio.to_thread(step)


async def run_helper(
    bus_address: str | None,
    make_engine: Callable[[], ClosableEngine],
    stop: asyncio.Event,
    make_authority: Callable[[MessageBus], Authority] = lambda bus: CachingAuthority(
        PolkitAuthority(bus)
    ),
    idle_exit_s: float = 0.0,
    finish_takeover: Callable[[], None] | None = None,
    make_service: Callable[
        [MessageBus, ClosableEngine, Authority, EngineThread], HelperService
    ] = HelperService,
    run_record: RunRecord | None = None,
) -> None:
    """Serve until stop is set, the bus goes away, or (idle_exit_s > 0) the
    helper was idle that long with no limits. bus_address None is the system
    bus (dbus-fast honours DBUS_SYSTEM_BUS_ADDRESS). finish_takeover runs
    TAKEOVER_GRACE_S after the engine is built, or at the stop if sooner.
    make_service: the service on the bus (a test's keeps it, to hold its
    waiting calls to bounds of the test's). run_record: where to say whether
    the helper runs or stopped cleanly, for the window and the CLI to read
    once it is gone (helper/run_state.py); None: nowhere (a test's engine)."""
    try:
        bus = await connect_system_bus(bus_address)
    except Exception as error:
        raise StartupError(f"cannot connect to the system bus: {error}") from None
    engine_thread = EngineThread()
    engine: ClosableEngine | None = None
    service: HelperService | None = None
    takeover = _Once(finish_takeover or (lambda: None))
    takeover_waits: asyncio.Future[None] | None = None
    # A start given up before the engine made anything leaves what was there:
    # "stopped" again only if it was so (a killed helper's objects stay).
    was_stopped = run_record is None or run_record.was_stopped()
    if run_record is not None:
        run_record.start()  # before the engine: building it makes kernel objects
    closed = False
    try:
        try:
            engine = await engine_thread.run(make_engine)
        except StartCancelled as cancelled:
            if not stop.is_set():
                raise
            log.info("%s: the start was given up", cancelled)
            return
        except LeftInKernel:  # its undo could not remove all it made: not "stopped"
            was_stopped = False
            raise
        takeover_waits = asyncio.ensure_future(_after(TAKEOVER_GRACE_S, takeover))
        if stop.is_set():  # it came after the slow steps: undone as at any stop
            log.info("stopped while starting")
            return
        service = make_service(bus, engine, make_authority(bus), engine_thread)
        if run_record is not None:
            service.on_limits_paused = run_record.running
        service.export()
        reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            if run_record is not None:  # another helper serves the bus: the record is its own
                run_record.leave()
            raise StartupError(f"the bus name {BUS_NAME} is taken (is another helper running?)")
        if (
            run_record is not None
        ):  # the bus's helper; paused as stored: a kill leaves none in force
            run_record.serving(await engine_thread.run(engine.limits_paused))
        log.info("serving %s", BUS_NAME)
        # Everything made while starting (the imports, the engine)
        # lives as long as the helper: out of the collector's sight, a full
        # collection under a storm of new processes paused calls 1 ms instead
        # of 16-27 ms (docs/helper.md, "Throughput of calls").
        gc.freeze()
        stopped = asyncio.ensure_future(stop.wait())
        disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        waits = {stopped, disconnected}
        if idle_exit_s > 0:
            waits.add(
                asyncio.ensure_future(_wait_until_idle(service, engine_thread, engine, idle_exit_s))
            )
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits - {disconnected}:
            waiting.cancel()
        if disconnected.done():
            raise StartupError("lost the connection to the bus")
        disconnected.cancel()
        log.info("stopping")
        try:
            await asyncio.wait_for(bus.release_name(BUS_NAME), 5.0)
        except Exception as error:
            log.warning("could not release %s: %s", BUS_NAME, error)
    finally:
        try:
            if service is not None:
                await service.close()
            if takeover_waits is not None:
                takeover_waits.cancel()
                await asyncio.to_thread(takeover)  # the old programs go even when stopping early
            if engine is not None:
                await engine_thread.run(engine.close)
            closed = engine is not None or was_stopped
        finally:
            if closed and run_record is not None:
                run_record.stopped()  # what it made is gone: its limits are off
            engine_thread.shutdown()
            bus.disconnect()


def _finish_takeover(state_dir: Path) -> None:
    """Detach the programs a killed helper of this state directory (or a
    datapath of no helper) left; those of live datapaths stay. Also remove
    the tc objects it recorded (in any namespace) that no shaper adopted: a
    helper of this state directory's (another helper's are its successor's to
    adopt). Imported here, like the engine: --help must not
    need pyroute2."""
    from chadthrottle.helper.kernel.cgroups import cgroup2_mount
    from chadthrottle.helper.kernel.datapath import remove_leftover_programs
    from chadthrottle.helper.kernel.namespace_shapers import remove_unadopted_elsewhere
    from chadthrottle.helper.kernel.ownership import journal_instance
    from chadthrottle.helper.kernel.tc_shaper import remove_unadopted
    from pyroute2.iproute import IPRoute

    instance = journal_instance(state_dir)
    remove_leftover_programs(cgroup2_mount(), instance)
    with IPRoute() as ipr:
        remove_unadopted(ipr, instance)
    remove_unadopted_elsewhere(instance)  # other namespaces, where limited applications had sockets


def _make_engine(
    state_dir: Path,
    backend: str,
    usage_flush_s: float = 60.0,
    wall_clock_file: Path | None = None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    stopping: threading.Event | None = None,
    link_events: bool = True,
    hook_linger_s: float | None = None,
) -> ClosableEngine:
    # Imported here: the factory pulls in pyroute2, which --help must not need.
    from chadthrottle.helper.engine.factory import EngineOptions, build_engine, wall_clock_from_file

    options = EngineOptions(
        state_dir=state_dir, backend=backend, usage_flush_s=usage_flush_s, cache_dir=cache_dir,
        stopping=stopping, link_events=link_events,
    )  # fmt: skip
    if wall_clock_file is not None:
        options = dataclasses.replace(options, wall_clock=wall_clock_from_file(wall_clock_file))
    if hook_linger_s is not None:
        options = dataclasses.replace(options, hook_linger_s=hook_linger_s)
    engine: ClosableEngine = build_engine(options)
    return engine


async def _serve(arguments: argparse.Namespace, stopping: threading.Event) -> None:
    """stopping: set by a stop signal, also one that came before the loop."""
    stop = asyncio.Event()  # the same, for the loop to wait on

    def on_signal() -> None:
        stopping.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal)
    if stopping.is_set():
        log.info("stopped before starting")
        return
    await run_helper(
        arguments.bus_address,
        lambda: _make_engine(arguments.state_dir, arguments.backend, arguments.usage_flush_s, arguments.wall_clock_file,
                             arguments.cache_dir, stopping, not arguments.no_link_events, arguments.hook_linger_s),
        stop,
        idle_exit_s=idle_exit_seconds(arguments.idle_exit_s, os.environ),
        finish_takeover=lambda: _finish_takeover(arguments.state_dir),
        run_record=RunRecord(arguments.bus_address),
    )  # fmt: skip


def idle_exit_seconds(option: float | None, environment: Mapping[str, str]) -> float:
    """--idle-exit-s if given (seconds_type refused a negative one), else
    DEFAULT_ACTIVATED_IDLE_EXIT_S when the bus started us, else 0 (never:
    someone started the helper by hand)."""
    if option is not None:
        return option
    return DEFAULT_ACTIVATED_IDLE_EXIT_S if ACTIVATION_ENVIRONMENT in environment else 0.0


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chadthrottle-helper",
        description="The ChadThrottle root helper: serves the limiter on the system bus.",
    )
    parser.add_argument(
        "--bus-address", metavar="ADDR", default=None,
        help="D-Bus address to serve on (default: the system bus, or $DBUS_SYSTEM_BUS_ADDRESS)",
    )  # fmt: skip
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"where limits are stored (default: {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="auto", help="enforcement backend (default: auto)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="(default: info)",
    )
    parser.add_argument(
        "--idle-exit-s", metavar="SECONDS", type=seconds_type(), default=None,
        help="exit after this long with no calls and no limits; 0 = never (default: "
        f"{DEFAULT_ACTIVATED_IDLE_EXIT_S:.0f} when started by D-Bus activation, else never)",
    )  # fmt: skip
    parser.add_argument(
        "--usage-flush-s",
        metavar="SECONDS",
        type=seconds_type(1.0, 3600.0),
        default=60.0,
        help="how often the usage history is written to disk; a crash loses at most this "
        "much of it (default: 60; 1 to 3600)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help=f"where compiled BPF programs are kept (default: {DEFAULT_CACHE_DIR}); an empty "
        "directory makes the helper compile them, as on its first start",
    )
    parser.add_argument(
        "--wall-clock-file",
        metavar="FILE",
        type=Path,
        default=None,
        help="for tests: read the time schedules and the usage history see (unix seconds) "
        "from FILE instead of the system clock",
    )
    parser.add_argument(
        "--no-link-events",
        action="store_true",
        help="for benches: follow interfaces by the once-a-second tick alone, without "
        "listening for the kernel's link events (docs/backends.md, 'Following interfaces')",
    )
    parser.add_argument(
        "--hook-linger-s",
        metavar="SECONDS",
        type=seconds_type(),
        default=None,
        help="for benches and tests: how long a tc hook, and another namespace's shaper, stays "
        "after its last limit (default 2; 0: it goes with the last limit; docs/backends.md, "
        "'A hook lingers 2 s after its last class')",
    )
    commands = parser.add_subparsers(dest="command", metavar=f"{{install,uninstall,{BUILD_CACHE}}}")
    add_install_commands(commands)
    add_build_cache_command(commands)  # helper/build_cache.py: for the package's postinst
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    lean_pyroute2.register()  # before the engine's imports: about 0.1 s less of every start
    arguments = parse_arguments(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if arguments.command in ("install", "uninstall"):
        return run_install_command(arguments)
    stopping = threading.Event()
    # Until the loop takes them (and again once it has given them back, which
    # restores the default), a stop signal only sets stopping; the handlers
    # found are put back at the end, so a caller in-process keeps its own.
    found = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    if _SIGNALLED_EARLY.is_set():  # checked after: one in between is not lost
        stopping.set()
    try:
        if arguments.command == BUILD_CACHE:  # a stop kills its compile, as a start's
            return run_build_cache(arguments, stopping)
        asyncio.run(_serve(arguments, stopping))
    except (StartupError, HelperError) as error:
        print(f"chadthrottle-helper: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        log.exception("the helper failed")
        print(f"chadthrottle-helper: failed: {error}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in found.items():
            if handler is not None:  # None: not set from Python, cannot be put back
                signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
