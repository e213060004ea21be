"""RunningEngine.close never leaves, or lets a late thread re-make, what it
removes (close26): the engine lock is shut before the kernel objects go, so a
kernel write in progress finishes first and none comes after; a write that
holds the lock past CLOSE_WAIT_S (stuck in a kernel call) makes close leave
everything, as a kill does, and raise LeftInKernel (the run record then keeps
"running"). Before: close joined each thread for 10 s and removed whatever
they were still doing, and a tick still running re-made its objects after.

RunningEngine's own close() over fake kernel parts (a stuck netlink call
cannot be made on purpose), and the real engine core over recording ports."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine import factory
from chadthrottle.helper.engine.closing_lock import ClosingLock
from chadthrottle.helper.engine.estimation import LinkEstimation
from chadthrottle.helper.engine.factory import RunningEngine
from chadthrottle.helper.errors import EngineClosed, LeftInKernel

from tests.helper.engine.test_engine_plan import World


class _Kernel:
    """The kernel as the engine's parts change it: one log, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def wake_new_owners(self) -> None:
        pass

    def close(self) -> None:  # the shaper's, the datapath's and the netlink socket's
        self.log.append("removed")


class _Quiet:
    def close(self) -> None:
        pass


def _engine(kernel: _Kernel, write: threading.Thread | None = None) -> RunningEngine:
    """A RunningEngine with its kernel parts faked, its threads given."""
    engine = object.__new__(RunningEngine)
    engine._lock = ClosingLock()  # type: ignore[misc]
    engine._stop = threading.Event()  # type: ignore[misc]
    engine._links_moved = threading.Event()
    engine._kernel_parts = (kernel, kernel, kernel)  # type: ignore[assignment]
    engine._threads = [write] if write is not None else []  # type: ignore[misc]
    engine._estimation = LinkEstimation()
    engine._saver = _Quiet()  # type: ignore[assignment]
    engine._usage_recorder = _Quiet()  # type: ignore[assignment]
    engine._proc_events = None
    engine.stop_graft_waits = lambda: None  # type: ignore[method-assign]
    return engine


@pytest.fixture
def short_close(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(factory, "CLOSE_WAIT_S", 0.3, raising=False)
    yield


def test_a_write_stuck_under_the_lock_leaves_everything_and_is_not_a_clean_stop(
    short_close: None,
) -> None:
    """A tick holds the lock in a kernel call that does not return until the
    test says: close gives up waiting, removes nothing and raises. Before:
    after 10 s it removed everything, and the tick then made its class."""
    kernel = _Kernel()
    inside, go_on = threading.Event(), threading.Event()
    holder: list[RunningEngine] = []

    def tick() -> None:
        with holder[0]._lock:
            inside.set()
            go_on.wait()
            kernel.log.append("class made")

    thread = threading.Thread(target=tick, name="engine-tick", daemon=True)
    engine = _engine(kernel, thread)
    holder.append(engine)
    thread.start()
    assert inside.wait(30)
    try:
        with pytest.raises(LeftInKernel, match="left in the kernel"):
            engine.close()
    finally:
        go_on.set()
        thread.join(30)
    assert kernel.log == ["class made"], "close removed objects a tick still held the lock to write"


def test_a_thread_writing_on_past_the_wait_writes_nothing_after_the_objects_go(
    short_close: None,
) -> None:
    """A thread that keeps writing (each write under the lock, as ticks and new
    owners do) and does not end when told: close shuts the lock between two of
    its writes, removes, and the thread's next write is refused. Before: it
    wrote on after everything was removed (a class, gate or tag re-made)."""
    kernel = _Kernel()
    holder: list[RunningEngine] = []
    refused = threading.Event()
    first = threading.Event()

    def writes() -> None:
        try:
            while True:
                with holder[0]._lock:
                    kernel.log.append("tag")
                first.set()
                refused.wait(0.001)  # off the lock between writes
        except EngineClosed:
            refused.set()

    thread = threading.Thread(target=writes, name="new-owners", daemon=True)
    engine = _engine(kernel, thread)
    holder.append(engine)
    thread.start()
    assert first.wait(30)
    try:
        engine.close()  # a clean stop: the late thread can write nothing
    finally:
        assert refused.wait(30), "the late thread's write after close was not refused"
        thread.join(30)
    assert kernel.log[-3:] == ["removed"] * 3, kernel.log[-5:]
    assert "tag" not in kernel.log[kernel.log.index("removed") :]


def test_a_closed_engine_refuses_every_kernel_write_path(world: World) -> None:
    """The real engine core once its lock is shut: a tick, a link follow, a new
    socket owner and a change each raise EngineClosed and write nothing."""
    world.spawn(10)
    world.engine.tick()
    shut: list[bool] = []

    def close() -> None:  # another thread's close: the closer itself may take it again
        shut.append(world.engine._lock.close(30))
        world.engine._lock.release()

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(30)
    assert shut == [True]
    tags, reconciles = list(world.datapath.events), world.shaper.reconciles
    for write in (world.engine.tick, world.engine.follow_links,
                  lambda: world.engine.note_new_owner(10),
                  lambda: world.engine.set_limit("pid:10", Direction.UP, 1_000_000, 0)):  # fmt: skip
        with pytest.raises(EngineClosed):
            write()
    assert world.datapath.events == tags and world.shaper.reconciles == reconciles
    assert world.datapath.process_slots == {}


def test_the_closer_may_take_the_shut_lock_again() -> None:
    """close() calls the engine's own steps (stop_graft_waits) under the shut lock."""
    lock = ClosingLock()
    assert lock.close(1)
    try:
        with lock:
            pass
    finally:
        lock.release()
    with pytest.raises(EngineClosed), lock:  # once let go, the closer's thread is refused too
        pass
    failed: list[BaseException] = []

    def other() -> None:
        try:
            with lock:
                pass
        except EngineClosed as error:
            failed.append(error)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert len(failed) == 1
