"""Build the engine with its real kernel parts, and run its once-a-second tick."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.contract import TICK_INTERVAL_S, Direction
from chadthrottle.helper.engine.backends import (
    EBPF,
    TC,
    BackendRouter,
    Enforcer,
    choose_backends,
    describe_backends,
    kernel_config,
)
from chadthrottle.helper.engine.engine import Engine
from chadthrottle.helper.engine.estimation import GLANCE_S, LinkEstimation
from chadthrottle.helper.engine.limits import LimitTable
from chadthrottle.helper.engine.rule_codec import rename_rules
from chadthrottle.helper.engine.rule_store import BackgroundSaver, RuleStore, StateFileError
from chadthrottle.helper.errors import EngineClosed, LeftInKernel, raise_if_stopping
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import all_pids
from chadthrottle.helper.identity.renames import certain_rename
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.link_events import LinkWatcher
from chadthrottle.helper.kernel.namespace_shapers import NamespaceShapers, NoPacing
from chadthrottle.helper.kernel.one_way import UploadQueueReader, one_way_notes
from chadthrottle.helper.kernel.ownership import journal_instance
from chadthrottle.helper.kernel.policer import EbpfPolicer
from chadthrottle.helper.kernel.proc_events import open_proc_events
from chadthrottle.helper.kernel.tc_shaper import HOOK_LINGER_S, TcShaper, remove_leftovers
from chadthrottle.helper.usage.recorder import FLUSH_INTERVAL_S, UsageRecorder
from chadthrottle.helper.usage.store import UsageStore
from pyroute2.iproute import IPRoute

log = logging.getLogger("chadthrottle.engine")

# After a link event, what else comes within this is followed in one go (a
# device is made, renamed, given an MTU and brought up in a few calls).
LINK_EVENTS_GATHER_S = 0.01
# Follows come at most this often: anyone may flap links in a namespace of
# their own where a limited program of theirs runs (a veth added and deleted
# woke the engine ~230 times a second), and each follow holds the engine lock.
LINK_EVENTS_MIN_GAP_S = 0.1
OWNER_POLL_MS = 500  # how long the owner thread waits at most (events and close() wake it)
# How long close() waits for its threads to end and for a kernel write in
# progress to let go of the engine lock (a tick takes milliseconds; a stop
# must not hang on one stuck in a netlink or bpf call).
CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class EngineOptions:
    state_dir: Path
    backend: str = "auto"
    cache_dir: Path = Path("/var/cache/chadthrottle")
    usage_flush_s: float = FLUSH_INTERVAL_S  # how often the usage history is written
    wall_clock: Callable[[], float] = (
        time.time
    )  # the time schedules and the usage history see (tests move it)
    # Set by SIGTERM/SIGINT: a build still starting gives up (StartCancelled).
    stopping: threading.Event | None = None
    link_events: bool = True  # False: interfaces followed by the tick alone (for benches)
    # How long tc hooks, and other namespaces' shapers, stay after their last
    # limit (tc_shaper.HOOK_LINGER_S; 0: they go with it, for benches and tests).
    hook_linger_s: float = HOOK_LINGER_S


# Unix seconds a --wall-clock-file may say: up to 9999-12-30 UTC, a date in any
# zone (the engine reads its clock as a datetime every tick, EngineCore._local_now;
# 2**40, the year 36812, made every tick raise ValueError: "year is out of range").
WALL_CLOCK_FILE_MAX_S = 253_402_128_000


def wall_clock_from_file(path: Path) -> Callable[[], float]:
    """A wall clock read from a file of unix seconds, for tests that move time
    across a schedule's minute (--wall-clock-file); the system's clock while
    the file says nothing usable."""

    def now() -> float:
        try:
            seconds = float(path.read_text().strip())
        except (OSError, ValueError):
            return time.time()
        # nan, inf and the far future read as floats, and time.localtime raised on them
        return seconds if 0 <= seconds < WALL_CLOCK_FILE_MAX_S else time.time()

    return now


class RunningEngine(Engine):
    """The engine with its kernel parts and its tick thread; close() undoes all."""

    def __init__(
        self,
        datapath: Datapath,
        shaper: BackendRouter,
        ipr: IPRoute,
        config: dict[str, str] | None,
        choice: dict[Direction, str],
        store: RuleStore,
        usage: UsageRecorder,
        socket_holders: set[int],
        wall_clock: Callable[[], float] = time.time,
        links_moved: threading.Event | None = None,
    ) -> None:
        """socket_holders: the processes that had sockets open before the
        datapath was attached (listed while they run, idle or not).
        links_moved: set by the link events (link_events.py): the shapers
        follow at once, between ticks."""
        self._links_moved = links_moved or threading.Event()
        self._saver = BackgroundSaver(store)  # fsync off the engine thread
        self._usage_recorder = usage
        self._proc_events = open_proc_events()
        super().__init__(
            datapath, shaper, ApplicationIndex(),
            lambda _active, viewer_pids=None: describe_backends(choice, shaper.active_by_backend(), config,
                                                                shaper.shaping_notes(viewer_pids)
                                                                + one_way_notes(datapath)),
            rules=_load_rules(store), save_rules=self._saver.save, lineage=self._proc_events, usage=usage,
            wall_clock=wall_clock,
        )  # fmt: skip
        self._kernel_parts = (datapath, shaper, ipr)
        # the link capacity, when the setting asks to estimate it (with the upload's one-way reading)
        self._estimation = LinkEstimation(one_way=UploadQueueReader(datapath))
        self.note_socket_holders(socket_holders)
        datapath.watch_new_owners(self.note_new_owner)
        usage.start()
        self.tick()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name="engine-tick", daemon=True),
            threading.Thread(target=self._watch_owners, name="new-owners", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _watch_owners(self) -> None:
        datapath = self._kernel_parts[0]
        while not self._stop.is_set():
            try:
                began_ns = time.monotonic_ns()  # every announcement made before it is read below
                lost = datapath.poll_new_owners(OWNER_POLL_MS)
                if self._proc_events is not None:
                    self._proc_events.drain()  # before its buffer fills
                if lost:  # the kernel kept some nowhere: no word past them until a tick looked
                    self.note_owners_lost(lost)
                self.note_owners_read(began_ns)
                self.keep_leases_between_ticks()  # while a tick runs late
            except EngineClosed:  # a new owner came as close() shut the engine
                return
            except Exception:
                log.exception("reading new socket owners failed")
                self._stop.wait(1.0)

    def _run(self) -> None:
        due = time.monotonic() + self.next_tick_in(TICK_INTERVAL_S)
        followed_at = float("-inf")
        while not self._stop.is_set():
            wake = due  # sooner while a download raise is judged: its glances (estimation.py)
            if self._estimation.glancing():
                wake = min(due, time.monotonic() + GLANCE_S)
            if self._links_moved.wait(max(0.0, wake - time.monotonic())):
                settle = max(
                    LINK_EVENTS_GATHER_S, followed_at + LINK_EVENTS_MIN_GAP_S - time.monotonic()
                )
                if self._stop.wait(min(settle, max(0.0, due - time.monotonic()))):
                    return
                self._links_moved.clear()  # the tick, if due, follows them too
                if time.monotonic() < due:
                    try:
                        self.follow_links()
                    except EngineClosed:  # close() came first: it writes nothing now
                        return
                    except Exception:  # fails open: the tick follows them all the same
                        log.exception("following a link event failed")
                    followed_at = time.monotonic()
                    continue
            if self._stop.is_set():
                return
            if wake < due and time.monotonic() < due:  # woken for a glance, no tick due yet
                try:
                    self._estimation.glance(self)
                except EngineClosed:
                    return
                except Exception:  # the capacity in force stays as it was; the tick goes on
                    log.exception("glancing at the link failed")
                continue
            ticked = time.monotonic()
            try:
                self.tick()
            except EngineClosed:
                return
            except Exception:  # the tick must survive anything the kernel throws
                log.exception("engine tick failed")
            if log.isEnabledFor(logging.DEBUG):  # beside the estimation's (its tick comes after)
                log.debug("engine tick at=%.4f late_ms=%.2f took_ms=%.2f", ticked,
                          (ticked - due) * 1000, (time.monotonic() - ticked) * 1000)  # fmt: skip
            try:
                self._estimation.tick(self)
            except EngineClosed:
                return
            except Exception:  # so must the estimate: the capacity in force stays as it was
                log.exception("estimating the link capacity failed")
            due = time.monotonic() + self.next_tick_in(TICK_INTERVAL_S)

    def close(self) -> None:
        """Stop ticking and remove every kernel object; safe to call twice.
        The engine lock is shut first (closing_lock.py): a tick or a new
        owner's tags in progress finish before the objects go, and none starts
        after. If a thread holds the lock past CLOSE_WAIT_S (stuck in a kernel
        call), nothing is removed, as after a kill (the next start takes the
        objects over), and LeftInKernel is raised: the run record must not say
        "stopped" while that thread may still make classes, gates or tags."""
        self._stop.set()
        self._links_moved.set()  # wakes the tick thread
        self._kernel_parts[0].wake_new_owners()  # and the owner thread, not OWNER_POLL_MS later
        deadline = time.monotonic() + CLOSE_WAIT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        shut = self._lock.close(deadline - time.monotonic())
        try:
            if shut:
                self.stop_graft_waits()  # under the shut lock: held-back processes stay untagged
            self._estimation.close()
            self._saver.close()  # writes a change still pending
            self._usage_recorder.close()  # and the usage of the last minute
            if self._proc_events is not None:
                self._proc_events.close()
            late = [thread.name for thread in self._threads if thread.is_alive()]
            if not shut:
                log.error("the engine lock was held for over %.0f s (threads still running: %s; stuck in a "
                          "kernel call?): the kernel objects are left as a kill leaves them, for the next "
                          "start to take over", CLOSE_WAIT_S, ", ".join(late) or "none")  # fmt: skip
                raise LeftInKernel(
                    f"the engine lock was held for over {CLOSE_WAIT_S:.0f} s: the limits were left in "
                    "the kernel, for the next start to take over"
                )
            if late:  # off the lock (reading counters or sockets): they can write nothing now
                log.warning("%s still running %.0f s after the stop: the engine is shut to them",
                            ", ".join(late), CLOSE_WAIT_S)  # fmt: skip
            datapath, shaper, ipr = self._kernel_parts
            try:
                shaper.close()
            finally:
                try:
                    datapath.close()
                finally:
                    ipr.close()
        finally:
            if shut:
                self._lock.release()


def _load_rules(store: RuleStore) -> LimitTable:
    """The stored rules, moved to the ids identity rules give now (and stored so)."""
    rules = store.load()
    done = rename_rules(rules, certain_rename)
    for line in done:
        log.info("%s", line)
    if done:
        try:
            store.save(rules)
        except StateFileError as error:
            log.error("%s; the renamed rules are in force but the file keeps the old ids", error)
    return rules


def build_engine(options: EngineOptions) -> RunningEngine:
    config = kernel_config()
    choice = choose_backends(options.backend, config)  # per direction; says what is missing
    log.info("backends: %s", ", ".join(f"{d.value}loads by {name}" for d, name in choice.items()))
    ipr = IPRoute()
    datapath = Datapath(
        cache_dir=options.cache_dir,
        stopping=options.stopping,
        instance=journal_instance(options.state_dir),  # a killed helper's are its successor's
    )
    links_moved = threading.Event()
    links: LinkWatcher | None = None
    router: BackendRouter | None = None
    try:
        remove_leftovers(ipr)
        datapath.open()
        raise_if_stopping(options.stopping, "attaching the datapath")
        adopted = datapath.adopt_open_sockets(all_pids())
        log.info("adopted %d sockets of %d processes opened before the helper started",
                 sum(adopted.values()), len(adopted))  # fmt: skip
        enforcers: dict[str, Enforcer] = {
            EBPF: EbpfPolicer(datapath)
        }  # the datapath's own: always there
        if TC in choice.values():
            instance = journal_instance(
                options.state_dir
            )  # a killed helper's objects are its successor's alone
            linger_s = options.hook_linger_s
            own = TcShaper(
                ipr, datapath.tc_program, datapath, instance=instance, hook_linger_s=linger_s
            )
            links = _link_watcher(links_moved) if options.link_events else None
            enforcers[TC] = NamespaceShapers(own, lambda other: TcShaper(other, datapath.tc_program, NoPacing(),
                                                                         instance=instance, hook_linger_s=linger_s),
                                             links=links, pacer=datapath, linger_s=linger_s)  # fmt: skip
        router = BackendRouter(
            {d: (name, enforcers[name]) for d, name in choice.items()},
            guard=(EBPF, enforcers[EBPF]),
        )
        usage = UsageRecorder(
            UsageStore(options.state_dir),
            options.usage_flush_s,
            wall_clock=options.wall_clock,
            rename=certain_rename,
        )  # one clock: the history's days are the schedules' days
        return RunningEngine(datapath, router, ipr, config, choice, RuleStore(options.state_dir), usage, set(adopted),
                             options.wall_clock, links_moved)  # fmt: skip
    except BaseException as error:
        left = _undo_build(links, router, datapath, ipr)
        if left:  # the run record must not say "stopped": these may hold on
            raise LeftInKernel(f"the start failed ({error}) and could not undo all it made: "
                               + "; ".join(left)) from error  # fmt: skip
        raise


def _undo_build(links: LinkWatcher | None, router: BackendRouter | None, datapath: Datapath,
                ipr: IPRoute) -> list[str]:  # fmt: skip
    """Undo a start that failed: every part closed, whatever the others did.
    Returns what may be left in the kernel (the shapers' or the datapath's
    objects), in words. Until 2026-12-06 a datapath that could not detach here
    (and a first tick's shapers, never closed) still let the run record say
    "stopped"."""
    left = []
    undo = (("the shapers", router.close if router is not None else None),
            ("the datapath", datapath.close))  # fmt: skip
    for what, close in undo:
        if close is None:
            continue
        try:
            close()
        except Exception as error:
            log.exception("undoing the failed start: closing %s failed", what)
            left.append(f"{what}: {error}")
    for other in (links, ipr):  # sockets: nothing of theirs is left in the kernel
        if other is not None:
            try:
                other.close()
            except Exception:
                log.exception("undoing the failed start: closing %r failed", other)
    return left


def _link_watcher(moved: threading.Event) -> LinkWatcher | None:
    """The link events' reader, or None (fails open: the tick follows interfaces)."""
    try:
        return LinkWatcher(moved.set)
    except OSError as error:
        log.warning("no link events (%s): interfaces are followed every second", error)
        return None
