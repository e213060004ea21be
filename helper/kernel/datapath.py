"""The BPF datapath: programs in bpf/datapath.c, compiled with bcc, attached
once at the cgroup v2 root, detached on close.

bcc attaches with the legacy call, so programs stay attached if the helper is
killed: traffic keeps flowing and limits keep working while it is down. The
next start attaches its own beside them (the cgroup runs both: the old ones
keep classifying with their socket tags until the new helper has tagged the
sockets) and then detaches them with remove_leftover_programs(), which finds
them by name (PROGRAM_NAME_PREFIX) and spares those of a datapath still alive
(ownership.py). Detaching them first left about 1.5 s unlimited at every
restart (bench/restart_gap.py).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy

from chadthrottle.helper.errors import BackendUnavailable, KernelError
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR, prepare_bcc_environment
from chadthrottle.helper.kernel.bpf_syscalls import CgroupAttachType
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.ownership import (
    OwnershipRecord,
    acquire_shared,
    holding_machine_lock,  # noqa: F401  (re-exported: benchmarks and tests use it from here)
    live_program_ids,
)
from chadthrottle.helper.kernel.layout import (
    HTB_MAJOR, NO_CAPS, PROGRAM_NAME_PREFIX, OwnerEvent, SlotPacing, SlotPolicer, SocketCaps, TrafficCounters,
    TrafficKey,
)
from chadthrottle.helper.kernel.socket_tagging import (
    MAX_RTT_US, UNCLAMPED_WINDOW, UNKNOWN_RTT_US, WINDOW_QUEUE_US, cap_open_sockets, clamp_open_windows,
    tag_open_sockets,
)

log = logging.getLogger("chadthrottle.kernel.datapath")

_CGROUP_PROGRAMS = (
    ("chadt_sock", CgroupAttachType.INET_SOCK_CREATE),
    ("chadt_egress", CgroupAttachType.INET_EGRESS),
    ("chadt_ingress", CgroupAttachType.INET_INGRESS),
    ("chadt_sockops", CgroupAttachType.SOCK_OPS),
)
TC_INGRESS_PROGRAMS = {True: "chadt_tc_in", False: "chadt_tc_in_l3"}  # by: packets carry an Ethernet header
BPF_F_LOCK = 4  # map update under the value's bpf_spin_lock
_TRAFFIC_KEY_DTYPE = numpy.dtype([(name, numpy.uint64 if ctype is ctypes.c_uint64 else numpy.uint32)
                                  for name, ctype in TrafficKey._fields_])
assert _TRAFFIC_KEY_DTYPE.itemsize == ctypes.sizeof(TrafficKey)

@dataclass(frozen=True)
class TrafficSample:
    """Monotonic counters of one (socket owner, interface), summed over CPUs.
    The interface is (netns_cookie, ifindex): indices repeat across namespaces."""

    netns_cookie: int
    owner_tgid: int
    ifindex: int
    rx_bytes: int
    rx_packets: int
    tx_bytes: int
    tx_packets: int


def _lookup_batch(map_fd: int, keys: Any, values: Any, key_size: int, value_size: int) -> int:
    """Read a whole hash map into keys/values with BPF_MAP_LOOKUP_BATCH; returns
    how many entries were read."""
    from bcc.libbcc import lib

    capacity, total = len(keys), 0
    batch, count = ctypes.c_uint32(0), ctypes.c_uint32(0)
    while total < capacity:
        count.value = capacity - total
        result = lib.bpf_lookup_batch(
            map_fd, ctypes.byref(batch) if total else None, ctypes.byref(batch),
            ctypes.byref(keys, key_size * total), ctypes.byref(values, value_size * total), ctypes.byref(count),
        )
        error = ctypes.get_errno()
        total += count.value
        if result != 0:
            if error == errno.ENOENT:
                break  # the whole map was read
            raise KernelError(f"reading the traffic counters failed: {os.strerror(error)}")
        if count.value == 0:
            break
    return total


def our_programs(cgroup_root: Path) -> list[tuple[CgroupAttachType, int, str]]:
    """Our programs attached to the cgroup root, whoever loaded them."""
    cgroup_fd = os.open(cgroup_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return [found for found in bpf_syscalls.attached_programs(cgroup_fd) if found[2].startswith(PROGRAM_NAME_PREFIX)]
    finally:
        os.close(cgroup_fd)


def remove_leftover_programs(cgroup_root: Path) -> int:
    """Detach programs a previous (killed) helper left on the cgroup root;
    programs of datapaths that are alive stay."""
    live = live_program_ids()
    removed = 0
    cgroup_fd = os.open(cgroup_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for attach_type, prog_id, _name in our_programs(cgroup_root):
            if prog_id in live:
                continue
            try:
                prog_fd = bpf_syscalls.open_program(prog_id)
            except OSError:
                continue
            try:
                bpf_syscalls.detach_from_cgroup(prog_fd, cgroup_fd, attach_type)
                removed += 1
            finally:
                os.close(prog_fd)
    finally:
        os.close(cgroup_fd)
    if removed:
        log.warning("detached %d programs left behind by an earlier helper", removed)
    return removed


class Datapath:
    """Owns the BPF programs and maps for the lifetime of the helper."""

    def __init__(self, cgroup_root: Path | None = None, cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
        self._cgroup_root = cgroup_root or cgroup2_mount()
        self._cache_dir = cache_dir
        self._bpf: Any = None
        self._cgroup_fd = -1
        self._attached: list[tuple[int, CgroupAttachType]] = []
        self._suspended: list[tuple[int, CgroupAttachType]] = []  # loaded, taken off by suspend()
        self._socket_tags_fd = -1
        self._lock_fd = -1
        self._record: OwnershipRecord | None = None
        self._owner_callback: Any = None
        self._traffic_buffers: Any = None
        self._slot_of_tgid: dict[int, int] = {}  # what set_process_slot wrote
        self._caps_of_slot: dict[int, SocketCaps] = {}  # what each slot's TCP sockets are held to

    @property
    def cgroup_root(self) -> Path:
        return self._cgroup_root

    def open(self, *, machine_lock_held: bool = False) -> None:
        """Compile, load and attach; on any failure nothing stays attached.

        machine_lock_held: the caller holds holding_machine_lock() (a benchmark
        that attaches and detaches while no other datapath may run); the
        shared lock would wait for it forever, so it is not taken."""
        prepare_bcc_environment(self._cache_dir)
        try:
            from bcc import BPF
        except ImportError as error:
            raise BackendUnavailable(
                "bcc is not installed: install python3-bpfcc (Debian) and use a Python that sees it"
            ) from error
        if not machine_lock_held:
            self._lock_fd = acquire_shared()
        try:
            self._load_and_attach(BPF)
        except BaseException:
            self.close()
            raise
        log.info("datapath attached at %s", self._cgroup_root)

    def _load_and_attach(self, BPF: Any) -> None:
        source = resources.files("chadthrottle.bpf")
        with resources.as_file(source / "datapath.c") as c_file:
            try:
                self._bpf = BPF(
                    src_file=str(c_file).encode(),
                    cflags=[f"-I{c_file.parent}", f"-DHTB_MAJOR={HTB_MAJOR:#x}", f"-DWINDOW_QUEUE_US={WINDOW_QUEUE_US}",
                            f"-DUNKNOWN_RTT_US={UNKNOWN_RTT_US}", f"-DMAX_RTT_US={MAX_RTT_US}",
                            f"-DUNCLAMPED_WINDOW={UNCLAMPED_WINDOW:#x}"],
                )
            except Exception as error:  # bcc raises bare Exception on compile errors
                raise BackendUnavailable(f"the BPF programs did not compile: {error}") from error
        from bcc.libbcc import lib

        self._socket_tags_fd = lib.bpf_table_fd(self._bpf.module, b"socket_tags")
        self._cgroup_fd = os.open(self._cgroup_root, os.O_RDONLY | os.O_DIRECTORY)
        loaded = []
        for name, attach_type in _CGROUP_PROGRAMS:
            prog_type = {CgroupAttachType.INET_SOCK_CREATE: BPF.CGROUP_SOCK,
                         CgroupAttachType.SOCK_OPS: BPF.SOCK_OPS}.get(attach_type, BPF.CGROUP_SKB)  # fmt: skip
            # The expected attach type lets the egress program return NET_XMIT_CN.
            loaded.append((self._bpf.load_func(name.encode(), prog_type, attach_type=int(attach_type)), attach_type))
        # Recorded before attaching: no other start may take them for leftovers.
        self._record = OwnershipRecord([bpf_syscalls.program_id(function.fd) for function, _ in loaded])
        for function, attach_type in loaded:
            bpf_syscalls.attach_to_cgroup(function.fd, self._cgroup_fd, attach_type)
            self._attached.append((function.fd, attach_type))

    def suspend(self) -> None:
        """Take the programs off the cgroup root, keeping them and their maps
        loaded, so resume() puts the same ones back within microseconds: a
        benchmark compares with and without them on one running connection."""
        while self._attached:
            prog_fd, attach_type = self._attached[-1]
            bpf_syscalls.detach_from_cgroup(prog_fd, self._cgroup_fd, attach_type)
            self._suspended.insert(0, self._attached.pop())

    def resume(self) -> None:
        """Attach what suspend() took off."""
        while self._suspended:
            prog_fd, attach_type = self._suspended[0]
            bpf_syscalls.attach_to_cgroup(prog_fd, self._cgroup_fd, attach_type)
            self._attached.append(self._suspended.pop(0))

    def close(self) -> None:
        """Lift the socket caps it set, detach everything; safe to call twice."""
        for slot in list(self._caps_of_slot) if self._bpf is not None else []:
            try:
                self.set_slot_caps(slot, NO_CAPS)
            except Exception:  # closing must go on
                log.exception("could not uncap the sockets of slot %d", slot)
        self._suspended.clear()
        for prog_fd, attach_type in reversed(self._attached):
            try:
                bpf_syscalls.detach_from_cgroup(prog_fd, self._cgroup_fd, attach_type)
            except OSError as error:
                log.error("could not detach a program from %s: %s", self._cgroup_root, error)
        self._attached.clear()
        if self._cgroup_fd >= 0:
            os.close(self._cgroup_fd)
            self._cgroup_fd = -1
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
        if self._record is not None:
            self._record.close()
            self._record = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def tc_ingress_program(self, ethernet: bool) -> tuple[int, str]:
        """fd and name of the cls_bpf program for an interface's ingress; one
        whose packets carry no Ethernet header (ethernet False) begins with IP."""
        from bcc import BPF

        name = TC_INGRESS_PROGRAMS[ethernet]
        function = self._bpf.load_func(name.encode(), BPF.SCHED_CLS)
        return function.fd, name

    def set_process_slot(self, tgid: int, app_slot: int) -> int:
        """New sockets of tgid get app_slot (0: none); its open sockets are
        re-tagged now, and held to the slot's caps (set_slot_caps).
        Returns how many open sockets were tagged."""
        table = self._bpf[b"slot_by_tgid"]
        key = table.Key(tgid)
        was = self._caps_of_slot.get(self._slot_of_tgid.get(tgid, 0), NO_CAPS)
        if app_slot:
            table[key] = table.Leaf(app_slot)
            self._slot_of_tgid[tgid] = app_slot
        else:
            table.pop(key, None)
            self._slot_of_tgid.pop(tgid, None)
        caps = self._caps_of_slot.get(app_slot, NO_CAPS)
        return tag_open_sockets(self._socket_tags_fd, tgid, app_slot, caps if caps != NO_CAPS or was != NO_CAPS else None,
                                was)  # fmt: skip

    def set_slot_caps(self, app_slot: int, caps: SocketCaps) -> None:
        """Hold the slot's TCP sockets to caps (NO_CAPS: lift them): the open
        ones of every process tagged with it now, new ones as they connect."""
        was = self._caps_of_slot.get(app_slot, NO_CAPS)
        if was == caps:
            return
        table = self._bpf[b"socket_caps"]
        table[table.Key(app_slot)] = table.Leaf(min(caps.pacing_bps, 0xFFFFFFFF), min(caps.window_bps, 0xFFFFFFFF))
        if caps != NO_CAPS:
            self._caps_of_slot[app_slot] = caps
        else:
            self._caps_of_slot.pop(app_slot, None)
        for tgid in [tgid for tgid, slot in self._slot_of_tgid.items() if slot == app_slot]:
            cap_open_sockets(tgid, caps, was)

    def clamp_windows(self, tgid: int, wire_bps: int) -> float | None:
        """Clamp the receive windows of tgid's open TCP sockets for a download
        limit of wire_bps ahead of tagging them; the longest any of their
        senders may still send at the old windows' pace (seconds), None if it
        has none."""
        return max(clamp_open_windows(tgid, wire_bps), default=None)

    def watch_new_owners(self, on_new_owner: Callable[[int, int], None]) -> None:
        """Call on_new_owner(tgid, cgroup_id) from poll_new_owners() for each
        process's first socket (see announce() in datapath.c)."""

        def deliver(_ctx: Any, data: Any, _size: int) -> int:
            event = ctypes.cast(data, ctypes.POINTER(OwnerEvent)).contents
            on_new_owner(event.tgid, event.cgroup_id)
            return 0

        self._owner_callback = deliver  # bcc keeps only a weak reference
        self._bpf[b"new_owners"].open_ring_buffer(deliver)

    def poll_new_owners(self, timeout_ms: int) -> None:
        self._bpf.ring_buffer_poll(timeout_ms)

    def forget_owner(self, tgid: int) -> None:
        """Let a reused pid be announced again."""
        table = self._bpf[b"announced_owners"]
        table.pop(table.Key(tgid), None)

    def adopt_open_sockets(self, pids: list[int]) -> int:
        """Record an owner on sockets opened before the datapath was attached,
        so their traffic is attributed. Returns how many were adopted."""
        return sum(tag_open_sockets(self._socket_tags_fd, pid, None) for pid in pids)

    def forget_process(self, tgid: int) -> None:
        table = self._bpf[b"slot_by_tgid"]
        table.pop(table.Key(tgid), None)
        self._slot_of_tgid.pop(tgid, None)

    def set_cgroup_slot(self, cgroup_id: int, app_slot: int) -> None:
        """New sockets created inside a cgroup (an app scope) get app_slot."""
        table = self._bpf[b"slot_by_cgroup"]
        key = table.Key(cgroup_id)
        if app_slot:
            table[key] = table.Leaf(app_slot)
        else:
            table.pop(key, None)

    def set_upload_pacing(self, app_slot: int, rate_bps: int, cn_queue_ns: int) -> None:
        """Start (rate_bps > 0) or stop (0) congestion notices for a slot's uploads."""
        table = self._bpf[b"upload_pacing"]
        pacing = SlotPacing(rate_bps=rate_bps, cn_queue_ns=cn_queue_ns)
        table[table.Key(app_slot)] = table.Leaf.from_buffer_copy(bytes(pacing))

    def read_policer(self, key: int) -> SlotPolicer:
        """One entry of the ebpf backend's policers array (policer.h)."""
        from bcc.libbcc import lib

        index, state = ctypes.c_uint32(key), SlotPolicer()
        if lib.bpf_lookup_elem(self._policers_fd(), ctypes.byref(index), ctypes.byref(state)) != 0:
            raise KernelError(f"could not read policer {key}")
        return state

    def write_policer(self, key: int, state: SlotPolicer) -> None:
        """Replace an entry under its spin lock (BPF_F_LOCK), so the programs
        never see half of a new configuration."""
        from bcc.libbcc import lib

        index = ctypes.c_uint32(key)
        result = lib.bpf_update_elem(self._policers_fd(), ctypes.byref(index), ctypes.byref(state), BPF_F_LOCK)
        if result != 0:
            raise KernelError(f"could not write policer {key}: {os.strerror(-result)}")

    def _policers_fd(self) -> int:
        from bcc.libbcc import lib

        return int(lib.bpf_table_fd(self._bpf.module, b"policers"))

    def retire_owners(self, samples: Iterable[TrafficSample]) -> list[TrafficSample]:
        """Remove the counters of processes that exited (their samples from the
        last read_traffic), returning their final values
        (BPF_MAP_LOOKUP_AND_DELETE_ELEM: nothing counted between that read and
        the delete is lost): a pid the kernel hands out again then starts from
        zero instead of inheriting the old process's bytes, and the map keeps
        room for the living."""
        from bcc.libbcc import lib

        samples = list(samples)
        if not samples:
            return []
        table = self._bpf[b"traffic"]
        retired = []
        for sample in samples:
            key = TrafficKey(sample.netns_cookie, sample.owner_tgid, sample.ifindex)
            values = (TrafficCounters * table.total_cpu)()
            if lib.bpf_lookup_and_delete(table.map_fd, ctypes.byref(key), ctypes.byref(values)) != 0:
                continue  # evicted meanwhile
            retired.append(TrafficSample(
                sample.netns_cookie, sample.owner_tgid, sample.ifindex,
                *(sum(getattr(value, name) for value in values) for name, _ in TrafficCounters._fields_),
            ))  # fmt: skip
        return retired

    def read_traffic(self) -> list[TrafficSample]:
        """One pass over the per-CPU counters: BPF_MAP_LOOKUP_BATCH into one
        buffer (a few syscalls, not two per key), summed over CPUs with numpy."""
        table = self._bpf[b"traffic"]
        if self._traffic_buffers is None:
            self._traffic_buffers = ((table.Key * table.max_entries)(), (table.Leaf * table.max_entries)())
        keys, values = self._traffic_buffers
        count = _lookup_batch(table.map_fd, keys, values, ctypes.sizeof(table.Key), ctypes.sizeof(table.Leaf))
        fields = len(TrafficCounters._fields_)
        sums = numpy.frombuffer(values, dtype=numpy.uint64, count=count * table.total_cpu * fields)
        sums = sums.reshape(count, table.total_cpu, fields).sum(axis=1)
        key_fields = numpy.frombuffer(keys, dtype=_TRAFFIC_KEY_DTYPE, count=count)
        return [
            TrafficSample(cookie, owner, ifindex, *counters)
            for (cookie, owner, ifindex), counters in zip(key_fields.tolist(), sums.tolist())
        ]


