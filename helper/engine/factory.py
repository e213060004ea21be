"""Build the engine with its real kernel parts, and run its once-a-second tick."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from chadthrottle.helper.engine.backends import describe_backends, kernel_config, tc_missing
from chadthrottle.helper.engine.engine import Engine
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import all_pids
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.tc_shaper import TcShaper, remove_leftovers

log = logging.getLogger("chadthrottle.engine")

TICK_INTERVAL_S = 1.0
BACKEND_CHOICES = ("auto", "tc", "ebpf")


@dataclass(frozen=True)
class EngineOptions:
    state_dir: Path
    backend: str = "auto"
    cache_dir: Path = Path("/var/cache/chadthrottle")


class RunningEngine(Engine):
    """The engine with its kernel parts and its tick thread; close() undoes all."""

    def __init__(self, datapath: Datapath, shaper: TcShaper, ipr: IPRoute, config: dict[str, str] | None) -> None:
        super().__init__(datapath, shaper, ApplicationIndex(), lambda active: describe_backends(active, config))
        self._kernel_parts = (datapath, shaper, ipr)
        self.tick()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-tick", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_INTERVAL_S):
            try:
                self.tick()
            except Exception:  # the tick must survive anything the kernel throws
                log.exception("engine tick failed")

    def close(self) -> None:
        """Stop ticking and remove every kernel object; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        datapath, shaper, ipr = self._kernel_parts
        try:
            shaper.close()
        finally:
            datapath.close()
            ipr.close()


def build_engine(options: EngineOptions) -> RunningEngine:
    if options.backend not in BACKEND_CHOICES:
        raise BackendUnavailable(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    if options.backend == "ebpf":
        raise BackendUnavailable("the ebpf policing backend is not built yet; use tc or auto")
    config = kernel_config()
    missing = tc_missing(config)
    if missing:
        raise BackendUnavailable("the tc backend needs kernel features this kernel lacks: " + ", ".join(missing))
    ipr = IPRoute()
    datapath = Datapath(cache_dir=options.cache_dir)
    try:
        remove_leftovers(ipr)
        datapath.open()
        adopted = datapath.adopt_open_sockets(all_pids())
        log.info("adopted %d sockets opened before the helper started", adopted)
        return RunningEngine(datapath, TcShaper(ipr, datapath.tc_ingress_program, datapath), ipr, config)
    except BaseException:
        datapath.close()
        ipr.close()
        raise
