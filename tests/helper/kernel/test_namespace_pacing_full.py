"""Datapath.pace_namespaces when the kernel map refuses an entry part-way
(namespace_pacing is a bounded hash: E2BIG when full). What was written
before the failure must be remembered, so a later "not divided" removes it
(review L4): a stale entry paces that namespace's sockets at an old share
if the slot is divided again without it."""

from __future__ import annotations

import pytest
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.held_caps import HeldCapsRecord
from chadthrottle.helper.kernel.layout import SocketCaps


class _BoundedMap:
    """A map with room for `room` entries, as bcc's tables: set and pop
    (keys are ctypes structures, kept by their bytes)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.entries: dict[bytes, object] = {}

    def set(self, key: object, value: object) -> None:
        raw = bytes(key)  # type: ignore[call-overload]
        if raw not in self.entries and len(self.entries) >= self.room:
            raise OSError(7, "Argument list too long")
        self.entries[raw] = value

    def pop(self, key: object) -> object:
        return self.entries.pop(bytes(key))  # type: ignore[call-overload]


def _datapath(room: int) -> Datapath:
    datapath = object.__new__(Datapath)  # the maps alone: no programs loaded
    datapath._maps = {
        "namespace_pacing": _BoundedMap(room),
        "namespace_socket_pacing": _BoundedMap(9),
    }  # type: ignore[assignment]
    datapath._namespace_shares = {}
    datapath._namespace_sockets = {}
    datapath._slot_pacing = {}
    datapath._caps_of_slot = {}
    datapath._caps_had = {}
    datapath._held = HeldCapsRecord(None)  # no record kept: the maps alone
    datapath._slot_of_tgid = {}
    return datapath


def test_entries_written_before_a_full_map_are_removed_when_no_longer_divided() -> None:
    datapath = _datapath(room=1)
    table = datapath._maps["namespace_pacing"]
    with pytest.raises(OSError):
        datapath.pace_namespaces(5, 1_000_000, {11: (500_000, 0), 22: (500_000, 0)})
    assert len(table.entries) == 1
    datapath.pace_namespaces(5, 1_000_000, {})
    assert len(table.entries) == 0 and 5 not in datapath._namespace_shares


def test_socket_caps_written_before_a_full_map_are_removed_when_no_longer_divided() -> None:
    """The same for namespace_socket_pacing (the sockets' caps per namespace,
    _write_namespace_sockets): a cap written before the refusal is removed."""
    datapath = _datapath(room=9)
    datapath._maps["namespace_socket_pacing"] = _BoundedMap(1)  # type: ignore[index]
    datapath._maps["socket_caps"] = _BoundedMap(9)  # type: ignore[index]
    datapath.set_slot_caps(5, SocketCaps(pacing_bps=1_000_000, window_bps=0))
    table = datapath._maps["namespace_socket_pacing"]
    with pytest.raises(OSError):
        datapath.pace_namespaces(5, 1_000_000, {11: (500_000, 0), 22: (500_000, 0)})
    assert len(table.entries) == 1
    datapath.pace_namespaces(5, 1_000_000, {})
    assert len(table.entries) == 0 and 5 not in datapath._namespace_sockets
