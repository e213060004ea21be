"""NamespaceShapers divides a limit whose application has processes in two
network namespaces (helper/kernel/namespace_shares.py) on real IFBs: each
namespace's class at a share, the shares adding up to the limit, the guard
of the divided upload raised; a limit of one namespace only is not divided.
(The traffic itself: tests/e2e/test_namespace_fair_share.py.)"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.layout import HTB_MAJOR, NamespaceSlot, SocketCaps
from chadthrottle.helper.kernel.limit_reach import OTHER_USERS, OWN_NAMESPACE, THEIR_REASON
from chadthrottle.helper.kernel.namespace_shapers import (
    DIVIDED_UPLOAD_GUARD,
    NamespaceShapers,
    NoPacing,
    thread_netns_cookie,
)
from chadthrottle.helper.kernel.socket_tagging import payload_pacing_bps
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, nsenter_argv, spawn
from tests.support.own_names import JOURNAL_INSTANCE

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
SLOT = 4
VETH_L3_TO_L2 = (1500 + 14) / 1500  # HTB counts from the Ethernet header; limits are at L3


def _class_bits(netns: str, shaper: TcShaper, direction: Direction) -> list[int]:
    """The rate (bit/s) of the slot's class on the shaper's IFB of a direction."""
    rates = []
    for ifb in {hook.ifb_name for hook in shaper._hooks[direction].values()}:
        shown = subprocess.run(["tc", "-n", netns, "class", "show", "dev", ifb],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        found = re.search(rf"class htb {HTB_MAJOR:x}:{SLOT:x} .* rate (\d+)(K?)bit", shown)
        assert found, shown
        rates.append(int(found.group(1)) * (1000 if found.group(2) else 1))
    return rates


def test_a_limit_over_two_namespaces_is_divided_and_one_over_one_is_not(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = "import time; print(1, flush=True); time.sleep(30)"
    process = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", program]), None)
    shapers = NamespaceShapers(
        shaper,
        lambda ipr: TcShaper(ipr, datapath.tc_program, NoPacing(), instance=JOURNAL_INSTANCE),
    )
    wanted = {Direction.UP: {SLOT: LIMIT}, Direction.DOWN: {SLOT: LIMIT}}
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "1"
        # the test process stands for the helper's own namespace (the shaper's own)
        shapers.shape_namespaces_of({os.getpid(): SLOT, process.pid: SLOT})
        shapers.reconcile(wanted)
        half = round(LIMIT.rate_bps / 2 * VETH_L3_TO_L2) * 8
        (other,) = shapers._elsewhere.values()
        for netns, each in ((pair.host_ns, shaper), (pair.peer_ns, other.shaper)):
            for direction in Direction:  # not measured yet: equal shares
                rates = _class_bits(netns, each, direction)
                assert rates and all(abs(r - half) <= 0.01 * half for r in rates), (netns, rates)
        guard = shapers.guard_plan(wanted)
        assert guard[Direction.UP][SLOT].rate_bps == round(LIMIT.rate_bps * DIVIDED_UPLOAD_GUARD)
        # how it holds, as each viewer may read it: the peer namespace named to
        # an administrator and to the user whose process is there, not to another
        assert pair.peer_ns in shapers.limit_reach(Direction.UP, True)[SLOT]
        assert pair.peer_ns in shapers.limit_reach(Direction.UP, True, {process.pid})[SLOT]
        theirs = shapers.limit_reach(Direction.UP, True, {os.getpid()})[SLOT]
        assert pair.peer_ns not in theirs and f"{OWN_NAMESPACE} and {OTHER_USERS}" in theirs
        # someone's u32 filter on the peer's uplink: a gap there, named as above
        subprocess.run(["tc", "-n", pair.peer_ns, "filter", "add", "dev", pair.peer_if, "ingress",
                        "prio", "10", "protocol", "ip", "u32", "match", "u32", "0", "0", "classid", "1:1"],
                       check=True)  # fmt: skip
        monkeypatch.setattr(TcShaper, "GAPS_MAX_AGE_S", 0.0)  # read at once, not a second later
        named = f"in namespace {pair.peer_ns}: {pair.peer_if}: a u32 filter"
        assert named in "; ".join(shapers.enforcement_gaps()[Direction.DOWN])
        assert named in "; ".join(shapers.enforcement_gaps({process.pid})[Direction.DOWN])
        hidden = "; ".join(shapers.enforcement_gaps({os.getpid()})[Direction.DOWN])
        assert pair.peer_ns not in hidden and pair.peer_if not in hidden
        assert f"in {OTHER_USERS}: {THEIR_REASON}" in hidden
        assert guard[Direction.DOWN][SLOT] == LIMIT  # downloads: the guard is after the IFB
        # a namespace that does not shape a direction has no share of it (its class would
        # pass none of that traffic), and the slot's listed rate there is the guard's
        assert shapers.policed_slots(Direction.DOWN) == set()
        shapers.reconcile(wanted)
        full = round(LIMIT.rate_bps * VETH_L3_TO_L2) * 8
        own_down = _class_bits(pair.host_ns, shaper, Direction.DOWN)
        assert own_down and all(abs(r - full) <= 0.01 * full for r in own_down), own_down
        assert shapers.policed_slots(Direction.DOWN) == {SLOT}
        assert shapers.policed_slots(Direction.UP) == set()

        shapers.shape_namespaces_of({process.pid: SLOT})  # its processes in one namespace only
        shapers.reconcile(wanted)
        whole = round(LIMIT.rate_bps * VETH_L3_TO_L2) * 8
        rates = _class_bits(pair.peer_ns, other.shaper, Direction.DOWN)
        assert rates and all(abs(r - whole) <= 0.01 * whole for r in rates), rates
        assert shapers.guard_plan(wanted) == wanted
    finally:
        process.kill()
        process.wait(10)
        shapers.reconcile({})
    assert not shapers._elsewhere


_PACED_CHILD = """
import socket, struct, sys, threading
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
accepted = server.accept()[0]
threading.Thread(target=lambda: [accepted.recv(65536) for _ in iter(int, 1)], daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "send":
        client.sendall(b"x" * 30_000)
    mss = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    print(mss, struct.unpack("=I", client.getsockopt(socket.SOL_SOCKET, 47, 4))[0], flush=True)
"""


def _child_pacing(child: subprocess.Popen[str], command: str = "read") -> tuple[int, int]:
    """(MSS, SO_MAX_PACING_RATE) of the child's connection, opened before the limit."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(command + "\n")
    child.stdin.flush()
    mss, pacing = child.stdout.readline().split()
    return int(mss), int(pacing)


def test_a_divided_upload_paces_each_namespaces_sockets_at_its_share(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath
) -> None:
    """Each namespace's sockets are paced at its share of a divided upload
    limit, not at the whole limit: its own virtual queue (namespace_pacing),
    its open TCP sockets (from user space) and new ones (chadt_sockops); a
    limit no longer divided paces them at the whole limit again."""
    subprocess.run(["ip", "-n", pair.peer_ns, "link", "set", "lo", "up"], check=True)
    child = subprocess.Popen(nsenter_argv(pair.peer_ns, [sys.executable, "-c", _PACED_CHILD]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    shapers = NamespaceShapers(
        shaper,
        lambda ipr: TcShaper(ipr, datapath.tc_program, NoPacing(), instance=JOURNAL_INSTANCE),
        pacer=datapath,
    )
    cap = SocketCaps(pacing_bps=995_000)
    wanted = {Direction.UP: {SLOT: LIMIT}}
    sockets: list[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        datapath.set_slot_caps(SLOT, cap)
        datapath.set_process_slot(child.pid, SLOT)
        mss, pacing = _child_pacing(child)
        assert pacing == payload_pacing_bps(cap.pacing_bps, mss, True)  # the whole limit
        datapath.set_process_slot(os.getpid(), SLOT)  # stands for the helper's namespace
        shapers.shape_namespaces_of({os.getpid(): SLOT, child.pid: SLOT})
        shapers.reconcile(wanted)
        while datapath.walk_pending():  # open sockets paced anew as the engine's tags() walks
            pass
        (other,) = shapers._elsewhere.values()
        half = LIMIT.rate_bps // 2  # not measured yet: equal shares
        share = (half, cap.pacing_bps // 2)
        assert datapath.namespace_pacing(SLOT) == {
            thread_netns_cookie(): share,
            other.cookie: share,
        }
        mss, pacing = _child_pacing(child)
        assert pacing == payload_pacing_bps(share[1], mss, True)
        _child_pacing(child, "send")  # its packets go to its namespace's queue
        queues = datapath._maps["namespace_pacing"]
        peer_queue = queues.get(NamespaceSlot(netns_cookie=other.cookie, app_slot=SLOT))
        own_queue = queues.get(NamespaceSlot(netns_cookie=thread_netns_cookie(), app_slot=SLOT))
        slot_queue = datapath._maps["upload_pacing"].get(SLOT)
        assert peer_queue.virtual_time_ns > 0 and own_queue.virtual_time_ns == 0
        assert slot_queue.divided == 1 and slot_queue.virtual_time_ns == 0
        listener = socket.create_server(("127.0.0.1", 0))
        sockets += [listener, socket.create_connection(listener.getsockname())]  # chadt_sockops
        own_mss = sockets[1].getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert _pacing_of(sockets[1]) == payload_pacing_bps(share[1], own_mss, True)

        shapers.shape_namespaces_of({child.pid: SLOT})  # no longer divided
        shapers.reconcile(wanted)
        while datapath.walk_pending():  # open sockets paced anew as the engine's tags() walks
            pass
        assert datapath.namespace_pacing(SLOT) == {}
        assert datapath._maps["upload_pacing"].get(SLOT).divided == 0
        mss, pacing = _child_pacing(child)
        assert pacing == payload_pacing_bps(cap.pacing_bps, mss, True)
    finally:
        child.kill()
        child.communicate(timeout=10)
        for sock in sockets:
            sock.close()
        datapath.set_process_slot(os.getpid(), 0)
        shapers.reconcile({})
    assert not shapers._elsewhere


def _pacing_of(sock: socket.socket) -> int:
    return int(struct.unpack("=I", sock.getsockopt(socket.SOL_SOCKET, 47, 4))[0])
