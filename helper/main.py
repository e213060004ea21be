"""Entry point of the root helper (``chadthrottle-helper``).

Order matters: connect to the bus (cheap to fail), build the engine (which
creates kernel objects), export the object, and only then take the bus name,
so a client never reaches a helper that cannot answer. On SIGTERM/SIGINT, or if
anything fails, the name is released and the engine closed, which removes
every kernel object it created.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from dbus_fast import BusType, NameFlag, RequestNameReply
from dbus_fast.aio import MessageBus

from chadthrottle.contract import BUS_NAME
from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.adapter.polkit import Authority, PolkitAuthority
from chadthrottle.helper.adapter.service import HelperService
from chadthrottle.helper.engine.api import EngineApi
from chadthrottle.helper.errors import HelperError

log = logging.getLogger("chadthrottle.helper.main")

DEFAULT_STATE_DIR = Path("/var/lib/chadthrottle")
BACKENDS = ("auto", "tc", "ebpf")


class StartupError(Exception):
    """The helper cannot run; the message is the one-line reason."""


class ClosableEngine(EngineApi, Protocol):
    def close(self) -> None:
        """Remove every kernel object the engine created."""


async def run_helper(
    bus_address: str | None,
    make_engine: Callable[[], ClosableEngine],
    stop: asyncio.Event,
    make_authority: Callable[[MessageBus], Authority] = PolkitAuthority,
) -> None:
    """Serve until stop is set or the bus goes away. bus_address None is the
    system bus (dbus-fast honours DBUS_SYSTEM_BUS_ADDRESS)."""
    try:
        bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
    except Exception as error:
        raise StartupError(f"cannot connect to the system bus: {error}") from None
    engine_thread = EngineThread()
    engine: ClosableEngine | None = None
    service: HelperService | None = None
    try:
        engine = await engine_thread.run(make_engine)
        service = HelperService(bus, engine, make_authority(bus), engine_thread)
        service.export()
        reply = await bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise StartupError(f"the bus name {BUS_NAME} is taken (is another helper running?)")
        log.info("serving %s", BUS_NAME)
        stopped = asyncio.ensure_future(stop.wait())
        disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        await asyncio.wait({stopped, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
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
            if engine is not None:
                await engine_thread.run(engine.close)
        finally:
            engine_thread.shutdown()
            bus.disconnect()


def _make_engine(state_dir: Path, backend: str) -> ClosableEngine:
    # Imported here: the factory pulls in bcc and pyroute2, which --help must not need.
    from chadthrottle.helper.engine.factory import EngineOptions, build_engine

    engine: ClosableEngine = build_engine(EngineOptions(state_dir=state_dir, backend=backend))
    return engine


async def _serve(arguments: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_helper(
        arguments.bus_address, lambda: _make_engine(arguments.state_dir, arguments.backend), stop
    )


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chadthrottle-helper",
        description="The ChadThrottle root helper: serves the limiter on the system bus.",
    )
    parser.add_argument(
        "--bus-address", metavar="ADDR", default=None,
        help="D-Bus address to serve on (default: the system bus, or $DBUS_SYSTEM_BUS_ADDRESS)",
    )  # fmt: skip
    parser.add_argument("--state-dir", metavar="DIR", type=Path, default=DEFAULT_STATE_DIR,
                        help=f"where limits are stored (default: {DEFAULT_STATE_DIR})")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="enforcement backend (default: auto)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"), help="(default: info)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_serve(arguments))
    except (StartupError, HelperError) as error:
        print(f"chadthrottle-helper: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        log.exception("the helper failed")
        print(f"chadthrottle-helper: failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
