"""On the real datapath: connections waiting in a listener's accept queue
when a rule lands (or is lifted) get the rule's tag at the first tick after
they are accepted, and nothing is walked or dumped while none waits
(helper/kernel/accept_queue.py; docs/backends.md, "Not reached")."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import ClearLimit, SetBlocked, SetLimit
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import accept_queue
from chadthrottle.helper.kernel import datapath as datapath_module
from chadthrottle.helper.kernel.accept_queue import (
    Listener,
    WalkSeen,
    accepted_since,
    pending_after_walk,
)
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.kernel.test_gate_write_failure import _engine
from tests.support.accepting_server import (
    Server,
    accept,
    accepting_server,
    connect_queued,
    fork_accepting,
    slot_of_fd,
    stop_with_workers,
)

UP = Direction.UP


@pytest.fixture
def server() -> Iterator[Server]:
    with accepting_server("ct-acceptq-", "ctacceptq") as served:
        yield served


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, pid: int) -> list[int]:
    """Count module.name's calls about pid (its first argument, or the second
    for tag_open_sockets, whose first is the map)."""
    calls: list[int] = []
    real: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        if pid in args[:2]:
            calls.append(pid)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _blocked(engine: AdminEngine, app: str) -> int:
    assert engine.apply_changes([SetBlocked(app, (UP,), True)]) == [app]
    slot = engine._applier.slots.slot_of((app, ADMIN_OWNER))
    assert slot is not None
    return slot


def test_nothing_waiting_nothing_walked_again(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener with an empty accept queue: the rule's walk finds nothing
    pending, and the ticks after neither dump nor walk its process."""
    app, process, _port = server
    engine = _engine(datapath)
    engine.tick()
    _blocked(engine, app)
    assert datapath._accept_queues.pending() == {}
    walks = _counting(monkeypatch, datapath_module, "tag_open_sockets", process.pid)
    dumps = _counting(monkeypatch, accept_queue, "waiting_children", process.pid)
    for _ in range(3):
        engine.tick()
    assert (walks, dumps) == ([], [])


def test_a_connection_waiting_two_ticks_is_tagged_at_the_tick_after_its_accept(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pending while it waits: each tick dumps, none walks; the tick after
    the accept walks once and tags it; then nothing is pending."""
    app, process, port = server
    engine = _engine(datapath)
    engine.tick()
    client = connect_queued(port)
    try:
        slot = _blocked(engine, app)
        assert datapath._accept_queues.pending() == {process.pid: 1}
        walks = _counting(monkeypatch, datapath_module, "tag_open_sockets", process.pid)
        engine.tick()
        engine.tick()
        assert walks == [], "walked again while the connection still waits"
        assert datapath._accept_queues.pending() == {process.pid: 1}
        fd = accept(process)
        engine.tick()
        assert walks == [process.pid]
        assert slot_of_fd(datapath, process.pid, fd) == slot
        assert datapath._accept_queues.pending() == {}
        engine.tick()
        assert walks == [process.pid]
    finally:
        client.close()


def test_a_connection_a_sibling_accepted_costs_no_walk_again(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's worker (a forked child sharing the listener) holds a
    connection it accepted before the rule: the server's own walk cannot
    tell it from one accepted after it read its descriptors, but the
    worker's walk, in the same change, reached it: nothing is pending, and
    neither is walked again (the server was, once, until review26)."""
    app, process, port = server
    engine = _engine(datapath)
    client = connect_queued(port)
    worker, fd, exited = fork_accepting(process)
    try:
        engine.tick()  # the worker seen: the rule's walk reaches it too
        walks = _counting(monkeypatch, datapath_module, "tag_open_sockets", process.pid)
        slot = _blocked(engine, app)
        assert slot_of_fd(datapath, worker, fd) == slot
        assert walks == [process.pid]
        assert datapath._accept_queues.pending() == {}
        for _ in range(3):
            engine.tick()
        assert walks == [process.pid], "walked again"
    finally:
        stop_with_workers(process, [client], [exited])


def test_a_rule_on_a_server_and_its_workers_dumps_once_and_walks_each_once(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose workers share its listener, each holding a connection
    it accepted, and one connection waiting: the rule's walks are looked at
    together, one dump for their listeners (each walk dumped the namespace's
    TCP sockets: 34 dumps and 640 ms for 32 workers beside 8,000 sockets,
    12 ms without), and a connection a worker's walk reached does not make
    the others walked again (each was walked twice)."""
    app, process, port = server
    engine = _engine(datapath)
    clients, workers = [], []
    try:
        for _ in range(3):
            clients.append(connect_queued(port))
            workers.append(fork_accepting(process))
        clients.append(connect_queued(port))  # waits: noted, and needs a dump
        engine.tick()  # the workers seen: the rule's walk reaches them too
        dumps: list[int] = []
        real_dump = accept_queue.waiting_children

        def dump(tgid: int, listeners: Any) -> Any:
            dumps.append(tgid)
            return real_dump(tgid, listeners)

        monkeypatch.setattr(accept_queue, "waiting_children", dump)
        walked = [process.pid] + [pid for pid, _, _ in workers]
        walks = [_counting(monkeypatch, datapath_module, "tag_open_sockets", pid) for pid in walked]
        slot = _blocked(engine, app)
        assert [slot_of_fd(datapath, pid, fd) for pid, fd, _ in workers] == [slot] * 3
        assert datapath._accept_queues.pending() == {pid: 1 for pid in walked}
        assert len(dumps) == 1, f"{len(dumps)} dumps for one change"
        assert [len(calls) for calls in walks] == [1] * 4, "walked again"
    finally:
        stop_with_workers(process, clients, [exited for _, _, exited in workers])


def test_a_connection_held_by_a_process_not_walked_costs_one_walk_again(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker holds a connection it accepted, and only the server is walked
    (the worker is another rule's, or none's): no walk reached it, so the
    server is walked again once, and no more, however many ticks: a walk
    again notes nothing (were it noted, the same connection would be found
    unreached at every tick, and walked for at every tick)."""
    _app, process, port = server
    client = connect_queued(port)
    _worker, _fd, exited = fork_accepting(process)
    try:
        walks = _counting(monkeypatch, datapath_module, "tag_open_sockets", process.pid)
        start = read_start(process.pid)
        assert start is not None and datapath.set_process_slot(process.pid, 1, start) > 0
        for _ in range(3):
            datapath.tag_accepted()  # as each tick's tags(): queued, then walked
            datapath.walk_pending()
        assert walks == [process.pid, process.pid], "walked again at every tick"
        assert datapath._accept_queues.pending() == {}
    finally:
        datapath.set_process_slot(process.pid, 0)
        datapath.tag_accepted()
        stop_with_workers(process, [client], [exited])


def test_a_connection_closed_before_its_accept_drops_out_unwalked(
    datapath: Datapath, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reset while waiting (SO_LINGER 0): the kernel frees it; nothing to walk for."""
    app, process, port = server
    engine = _engine(datapath)
    engine.tick()
    client = connect_queued(port)
    _blocked(engine, app)
    assert datapath._accept_queues.pending() == {process.pid: 1}
    walks = _counting(monkeypatch, datapath_module, "tag_open_sockets", process.pid)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # a reset: the server's end, still queued, is closed (TCP_CLOSE)
    engine.tick()
    assert datapath._accept_queues.pending() == {}
    assert walks == []


def test_a_connection_waiting_when_a_rule_is_lifted_loses_the_slot_once_accepted(
    datapath: Datapath, server: Server
) -> None:
    """The mirror: made while the listener carried the slot, it carries it
    into the queue; the lift's walk untags the listener, and the tick after
    the accept the connection."""
    app, process, port = server
    engine = _engine(datapath)
    engine.tick()
    assert engine.apply_changes([SetLimit(app, UP, 10_000_000, 0)]) == [app]
    slot = engine._applier.slots.slot_of((app, ADMIN_OWNER))
    client = connect_queued(port)
    try:
        assert engine.apply_changes([ClearLimit(app, (UP,))]) == [app]
        assert datapath._accept_queues.pending() == {process.pid: 1}
        fd = accept(process)
        assert slot and slot_of_fd(datapath, process.pid, fd) == slot  # not reached yet
        engine.tick()
        assert slot_of_fd(datapath, process.pid, fd) == 0
    finally:
        client.close()


def test_which_connections_a_walk_did_not_reach() -> None:
    """Waiting (no inode) or accepted after the walk read the descriptors
    (an inode it did not see); a later dump: still waiting, accepted, gone."""
    seen = WalkSeen(inodes={11})
    assert pending_after_walk({1: 0, 2: 11, 3: 12}, seen) == {1, 3}
    assert accepted_since({1: 0, 3: 12}, {1, 3, 4}) == ({1}, True)
    assert accepted_since({1: 0}, {1, 4}) == ({1}, False)
    assert accepted_since(None, {1}) == (set(), False)


def test_a_listener_on_any_address_makes_connections_to_each() -> None:
    v4 = socket.inet_pton(socket.AF_INET, "127.0.0.1").ljust(16, b"\0")
    other = socket.inet_pton(socket.AF_INET, "10.0.0.1").ljust(16, b"\0")
    anywhere = Listener(socket.AF_INET, bytes(16), 80, 1)
    bound = Listener(socket.AF_INET, v4, 80, 1)
    assert anywhere.made(socket.AF_INET, other, 80)
    assert bound.made(socket.AF_INET, v4, 80)
    assert not bound.made(socket.AF_INET, other, 80)
    assert not anywhere.made(socket.AF_INET, v4, 81)
    assert not anywhere.made(socket.AF_INET6, bytes(16), 80)
