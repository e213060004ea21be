"""A prioritized application in a container (issue 16): its sockets live in a
namespace of their own behind a veth into the shaper's, masqueraded out of
the shaper's uplink as docker does. Its packets reach the uplink without
their socket and after SNAT, and its downloads before conntrack undoes the
NAT, so the uplink's hooks class them by what the veth's ingress hook carried
(skb->tc_index) and the flow the uplink's egress noted (bpf/datapath.c):
the slot's class in the link tree must carry its bytes both ways, IPv4 and
IPv6, and the kernel's per-slot counts must say so (the listing reads them).
Before, both classes stayed empty (the default class had it all)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.bpf_maps import lookup_batch
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, HTB_MAJOR, ClassSpec
from chadthrottle.helper.kernel.namespace_shapers import NoPacing
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_ownership import FILTER_PRIORITY
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, extra_link, nsenter_argv, start_stream
from tests.support.own_names import JOURNAL_INSTANCE
from tests.support.waiting import eventually

LINK = LinkShaping(capacity_bps=12_500_000)  # 100 Mbit/s: the streams fill their classes' share
CALL = ClassSpec(rate_bps=0, burst_bytes=0, priority=Priority.CRITICAL)  # a priority alone
SLOT = 7
STALE_LINK = LinkShaping(capacity_bps=50_000)  # the default class drains a full leaf in ~3 s
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def _run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, input=stdin)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"


@contextlib.contextmanager
def masqueraded_container(pair: NetnsPair) -> Iterator[NetnsPair]:
    """A namespace behind pair.host_ns (IPv4 and IPv6), its packets masqueraded
    out of pair.host_if (an nft inet table of its own): as a NetnsPair from the
    container (host side) to pair's peer. Undone on exit."""
    name = f"ctcflow16-{secrets.token_hex(3)}"
    helper = pair.host_ns
    was = {key: subprocess.run(nsenter_argv(helper, ["sysctl", "-n", key]), capture_output=True,
                               text=True, check=True).stdout.strip() for key in SYSCTLS}  # fmt: skip
    table = f"ctcflow16{secrets.token_hex(3)}"
    with extra_link(name, helper) as link:  # host_*: the container's side
        try:
            for key in SYSCTLS:
                _run(nsenter_argv(helper, ["sysctl", "-qw", f"{key}=1"]))
            _run(["ip", "-n", name, "route", "add", "default", "via", link.peer_addr])
            _run(["ip", "-n", name, "-6", "route", "add", "default", "via", link.peer_addr6])
            _run(nsenter_argv(helper, ["nft", "-f", "-"]),
                 f"table inet {table} {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n"
                 f'  oifname "{pair.host_if}" masquerade\n }}\n}}\n')  # fmt: skip
            yield NetnsPair(peer_ns=pair.peer_ns, host_ns=name, peer_if="", host_if=link.host_if,
                            peer_addr=pair.peer_addr, host_addr=link.host_addr,
                            peer_addr6=pair.peer_addr6, host_addr6=link.host_addr6)  # fmt: skip
        finally:
            subprocess.run(
                nsenter_argv(helper, ["nft", "delete", "table", "inet", table]), capture_output=True
            )
            for key, value in was.items():
                subprocess.run(
                    nsenter_argv(helper, ["sysctl", "-qw", f"{key}={value}"]), capture_output=True
                )


def _unlinked(shaper: TcShaper) -> None:
    """The shaper back to no link and no class, as each test found it."""
    for direction in Direction:
        shaper.set_link(direction, None)
    shaper.reconcile({})


def _uplink_bytes(pair: NetnsPair) -> tuple[int, int]:
    """(sent, received) bytes of the helper's uplink so far."""
    shown = subprocess.run(["ip", "-n", pair.host_ns, "-j", "-s", "link", "show", "dev", pair.host_if],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    stats = json.loads(shown)[0]["stats64"]
    return int(stats["tx"]["bytes"]), int(stats["rx"]["bytes"])


@pytest.mark.parametrize(
    ("family", "mptcp"), [(6, False), (4, True)]
)  # IPv4 TCP: tests/e2e/test_priority_in_a_container.py
def test_a_containers_prioritized_flows_are_classed_both_ways_through_nat(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, family: int, mptcp: bool
) -> None:
    """mptcp: the application's MPTCP connection sends on subflows, sockets
    the kernel made, which have their connection's tag (tag_of_socket)."""
    with masqueraded_container(pair) as container:
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        streams = [start_stream(container, 5593 + i, way, family=family, seconds=20, congestion="cubic",
                                mptcp=mptcp)
                   for i, way in enumerate(("up", "down"))]  # fmt: skip
        try:
            for stream in streams:
                datapath.set_process_slot(stream.app_pid, SLOT)
            before = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            sent = {direction: shaper.sent_bytes(direction).get(SLOT, 0) for direction in Direction}

            least = 1_000_000 if mptcp else 2_000_000  # an MPTCP upload here: ~0.25 MB/s

            def classed_both_ways() -> bool:
                return all(shaper.sent_bytes(d).get(SLOT, 0) - sent[d] > least for d in Direction)

            classed = eventually(classed_both_ways, 8.0)
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            now = {d: shaper.sent_bytes(d).get(SLOT, 0) - sent[d] for d in Direction}
            print(
                f"IPv{family} through NAT: the slot's class sent {now}; kernel counts {before} -> {after}"
            )
            assert classed, now
            assert after[0] - before[0] > 50 and after[1] - before[1] > 50, (before, after)
        finally:
            for stream in streams:
                stream.stop()
            _unlinked(shaper)


@pytest.mark.parametrize("nested", [False, True], ids=["its-socket", "forwarded-by-it"])
def test_a_slot_written_by_someone_else_into_tc_index_is_not_taken_for_ours(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, nested: bool
) -> None:
    """skb->tc_index is written by any tc filter's match (TC_H_MIN of its
    classid): a container's own root (an unprivileged LXC's has CAP_NET_ADMIN
    there) can set it on every packet it sends, its own sockets' and those it
    forwards from a namespace of its own (which reach the veth without their
    socket). An application with no slot there must not be classed, counted
    or noted as ours: the veth's hook carries only what it read from the
    socket, nothing else."""
    with contextlib.ExitStack() as made:
        container = made.enter_context(masqueraded_container(pair))
        sender = made.enter_context(masqueraded_container(container)) if nested else container
        for argv in (["tc", "qdisc", "add", "dev", container.host_if, "clsact"],
                     ["tc", "filter", "add", "dev", container.host_if, "egress", "protocol", "all",
                      "u32", "match", "u32", "0", "0", "classid", f"1:{SLOT:x}"]):  # fmt: skip
            _run(nsenter_argv(container.host_ns, argv))
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        streams = [start_stream(sender, 5603 + i, way, family=6, seconds=20, congestion="cubic")
                   for i, way in enumerate(("up", "down"))]  # fmt: skip
        try:
            before = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            sent = {direction: shaper.sent_bytes(direction).get(SLOT, 0) for direction in Direction}
            carried = _uplink_bytes(pair)

            def streams_ran() -> bool:  # both ways, through the uplink
                now = _uplink_bytes(pair)
                return all(now[i] - carried[i] > 1_000_000 for i in range(2))

            assert eventually(streams_ran, 8.0), "the streams never ran"
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            now = {d: shaper.sent_bytes(d).get(SLOT, 0) - sent[d] for d in Direction}
            print(
                f"foreign tc_index: the slot's class sent {now}; kernel counts {before} -> {after}"
            )
            assert after == before and all(n < 100_000 for n in now.values()), (now, before, after)
        finally:
            for stream in streams:
                stream.stop()
            _unlinked(shaper)


def test_a_slot_a_foreign_filter_wrote_on_a_device_we_do_not_hook_is_not_taken_for_ours(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper
) -> None:
    """A packet that enters the helper's namespace by a device whose ingress
    our hook does not run on (here: only uploads shaped, so no ingress hook at
    all; or a LAN device) comes with whatever tc_index that device's own
    filters wrote: a u32 'classid 1:7' there, on the container's veth, made an
    application of no slot's upload classed and counted as slot 7's on the
    uplink. Only a device our hook carries is trusted (carrying_devices)."""
    with masqueraded_container(pair) as container:
        shown = subprocess.run(["ip", "-n", pair.host_ns, "-j", "route", "get", container.host_addr],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        veth = json.loads(shown)[0]["dev"]  # the container's veth, the helper's side
        shaper.set_link(Direction.UP, LINK)
        shaper.reconcile({Direction.UP: {SLOT: CALL}})
        made_qdisc = not subprocess.run(nsenter_argv(pair.host_ns, ["tc", "qdisc", "add", "dev", veth, "clsact"]),
                                        capture_output=True).returncode  # else the shaper's (uploads)  # fmt: skip
        _run(nsenter_argv(pair.host_ns, ["tc", "filter", "add", "dev", veth, "ingress", "prio", "1", "protocol",
                                         "all", "u32", "match", "u32", "0", "0", "classid", f"1:{SLOT:x}"]))  # fmt: skip
        stream = start_stream(container, 5623, "up", family=4, seconds=20, congestion="cubic")
        try:
            before = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            sent = shaper.sent_bytes(Direction.UP).get(SLOT, 0)
            carried = _uplink_bytes(pair)[0]
            assert eventually(lambda: _uplink_bytes(pair)[0] - carried > 3_000_000, 8.0), (
                "no upload"
            )
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            now = shaper.sent_bytes(Direction.UP).get(SLOT, 0) - sent
            print(
                f"by a device we do not hook: the slot's class sent {now}; counts {before} -> {after}"
            )
            assert after == before and now < 100_000, (now, before, after)
        finally:
            stream.stop()
            _run(
                nsenter_argv(
                    pair.host_ns, ["tc", "filter", "del", "dev", veth, "ingress", "prio", "1"]
                )
            )
            shaper.set_link(Direction.UP, None)
            shaper.reconcile({})
            if made_qdisc:
                _run(nsenter_argv(pair.host_ns, ["tc", "qdisc", "del", "dev", veth, "clsact"]))


def _helper_side(pair: NetnsPair, container: NetnsPair) -> str:
    """The container's veth, the helper's side."""
    shown = subprocess.run(["ip", "-n", pair.host_ns, "-j", "route", "get", container.host_addr],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return str(json.loads(shown)[0]["dev"])


@pytest.mark.parametrize("prio", [1, 60000], ids=["before-ours", "after-ours"])
def test_a_hooked_device_where_a_foreign_filter_can_write_tc_index_carries_nothing(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, prio: int
) -> None:
    """Our hook on the container's veth writes the slot into skb->tc_index,
    but the kernel writes TC_H_MIN(classid) into it after any filter on that
    ingress that returns TC_ACT_OK: one before ours (then ours never runs)
    or one after ours (ours matches nothing for an upload and the search goes
    on). With a u32 'classid 1:7' there, an application of no slot's upload
    was classed and counted as slot 7's on the uplink, so the listing said a
    container's priority in force while that filter chose the class. Such a
    device is not trusted as carrying (the filter is left alone), and the
    link's gaps say why its containers' uploads are not ordered. After ours:
    only where our catch-all does not end the search, i.e. downloads shaped
    by a limit (here another slot's) and not under a link."""
    wanted = {direction: {SLOT: CALL} for direction in Direction}
    if prio > FILTER_PRIORITY:
        wanted[Direction.DOWN] = {SLOT + 1: ClassSpec(rate_bps=1_000_000, burst_bytes=0)}
    with masqueraded_container(pair) as container:
        veth = _helper_side(pair, container)
        for direction in Direction if prio < FILTER_PRIORITY else [Direction.UP]:
            shaper.set_link(direction, LINK)
        shaper.reconcile(wanted)  # hooks the veth (an uplink to the shaper): its clsact
        _run(nsenter_argv(pair.host_ns, ["tc", "filter", "add", "dev", veth, "ingress", "prio", str(prio),
                                         "protocol", "all", "u32", "match", "u32", "0", "0", "classid",
                                         f"1:{SLOT:x}"]))  # fmt: skip
        stream = start_stream(container, 5633, "up", family=4, seconds=20, congestion="cubic")
        try:

            def doubted() -> bool:  # the engine's tick: a reconcile, then the gaps
                shaper.reconcile(wanted)
                return any(veth in why for why in shaper.carrying_gaps())

            said = eventually(doubted, 3.0, 0.25)
            drained = [shaper.sent_bytes(Direction.UP).get(SLOT, 0)]

            def drained_now() -> bool:  # what the class queued before is sent: no growth in 0.6 s
                drained.append(shaper.sent_bytes(Direction.UP).get(SLOT, 0))
                return len(drained) > 3 and drained[-1] == drained[-4]

            eventually(drained_now, 3.0, 0.2)
            before = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            sent = shaper.sent_bytes(Direction.UP).get(SLOT, 0)
            carried = _uplink_bytes(pair)[0]
            assert eventually(lambda: _uplink_bytes(pair)[0] - carried > 3_000_000, 8.0), (
                "no upload"
            )
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            now = shaper.sent_bytes(Direction.UP).get(SLOT, 0) - sent
            gaps = shaper.carrying_gaps()
            print(f"a foreign filter at prio {prio} on the hooked veth: the slot's class sent {now}; "
                  f"counts {before} -> {after}; carrying gaps {gaps}")  # fmt: skip
            assert after == before and now < 100_000, (now, before, after)
            assert said, gaps
            assert _has_filter_at(pair, veth, prio), "the foreign filter was touched"
        finally:
            stream.stop()
            subprocess.run(
                nsenter_argv(
                    pair.host_ns, ["tc", "filter", "del", "dev", veth, "ingress", "prio", str(prio)]
                ),
                capture_output=True,
            )
            _unlinked(shaper)


def _has_filter_at(pair: NetnsPair, device: str, prio: int) -> bool:
    """Whether the device's ingress still has a filter at prio."""
    shown = subprocess.run(nsenter_argv(pair.host_ns, ["tc", "-j", "filter", "show", "dev", device, "ingress"]),
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return any(entry.get("pref") == prio for entry in json.loads(shown or "[]"))


ECHO = """
import socket, sys
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind((sys.argv[1], int(sys.argv[2])))
reply = bytes(1200)
while True:
    _, sender = server.recvfrom(64)
    for _ in range(8):
        server.sendto(reply, sender)
"""
ASKER = """
import socket, sys, time
sys.stdin.readline()  # the test has given this process its slot, or none
asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
asker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
asker.bind((sys.argv[1], int(sys.argv[2])))
asker.setblocking(False)
end = time.monotonic() + float(sys.argv[5])
while time.monotonic() < end:
    asker.sendto(b"more", (sys.argv[3], int(sys.argv[4])))
    time.sleep(0.002)
    try:
        while asker.recv(2048):
            pass
    except BlockingIOError:
        pass
"""


def _ask(datapath: Datapath, netns: str, source: tuple[str, int], far: tuple[str, int],
         slot: int, seconds: float) -> None:  # fmt: skip
    """Run ASKER in ``netns`` from ``source`` to ``far`` for ``seconds``, in
    ``slot`` (0: none) from its first packet on: it waits on stdin for that."""
    argv = [sys.executable, "-c", ASKER, source[0], str(source[1]), far[0], str(far[1]),
            str(seconds)]  # fmt: skip
    asker = subprocess.Popen(nsenter_argv(netns, argv), stdin=subprocess.PIPE, text=True)
    try:
        if slot:
            datapath.set_process_slot(asker.pid, slot)
        assert asker.stdin is not None
        asker.stdin.write("go\n")
        asker.stdin.close()
        asker.wait(timeout=seconds + 10)
    finally:
        asker.kill()
        datapath.set_process_slot(asker.pid, 0)


def test_a_flow_that_takes_over_a_noted_tuple_is_not_classed_as_the_slots(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper
) -> None:
    """The uplink's egress notes a forwarded flow's tuple after NAT with its
    slot, for its downloads. A later flow of no slot on the same tuple (the
    same remote, a source port NAT kept: another process of the container,
    or of another container) must not have its downloads classed and counted
    as that slot's: its first packet out forgets the tuple."""
    with masqueraded_container(pair) as container:
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        port, local_port = 5613, 40613
        echo = subprocess.Popen(
            nsenter_argv(pair.peer_ns, [sys.executable, "-c", ECHO, pair.peer_addr, str(port)])
        )
        try:

            def ask(slot: int, seconds: float) -> None:
                _ask(datapath, container.host_ns, (container.host_addr, local_port),
                     (pair.peer_addr, port), slot, seconds)  # fmt: skip

            ask(SLOT, 1.0)
            noted = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            assert noted[1] > 100, f"the slot's own flow was not classed: {noted}"
            downloaded = _uplink_bytes(pair)[1]
            ask(0, 1.0)
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            print(f"a flow of no slot on the slot's tuple: counts {noted} -> {after}, "
                  f"{_uplink_bytes(pair)[1] - downloaded} B received")  # fmt: skip
            assert _uplink_bytes(pair)[1] - downloaded > 1_000_000, "the second flow never ran"
            assert after[1] == noted[1], (noted, after)
        finally:
            echo.kill()
            echo.wait()
            _unlinked(shaper)


SENDER = """
import socket, sys, time
sys.stdin.readline()  # the test has given this process its slot, or none
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sender.bind((sys.argv[1], int(sys.argv[2])))
for _ in range(int(sys.argv[5])):
    sender.sendto(bytes(1400), (sys.argv[3], int(sys.argv[4])))
    time.sleep(0.001)  # the first waits for the neighbour's address: the rest not dropped with it
"""
SINK = """
import socket, sys
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind((sys.argv[1], int(sys.argv[2])))
while True:
    sink.recv(2048)
"""


def _default_backlog(pair: NetnsPair, shaper: TcShaper) -> int:
    """Bytes the upload IFB's default class holds now (tc -s class's backlog)."""
    (ifb,) = shaper._ifbs(Direction.UP)
    links = subprocess.run(["ip", "-n", pair.host_ns, "-j", "link", "show"], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    device = next(link["ifname"] for link in json.loads(links) if link["ifindex"] == ifb.ifindex)
    classid = f"{HTB_MAJOR:x}:{DEFAULT_MINOR:x}"  # tc -j prints no JSON for HTB classes
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-s", "class", "show", "dev", device, "classid", classid],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    held = re.search(r"\bbacklog (\d+)([KM]?)b ", shown)  # tc rounds to K or M (of 1024) where near
    assert held, shown
    return int(held.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[held.group(2)]


def test_a_noted_tuple_outlives_the_stale_packets_the_upload_ifb_sends_on(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper
) -> None:
    """Every packet under a link passes the uplink's egress twice: as it comes
    (judged: noted, classed, or its tuple forgotten if no classed slot came
    with it) and as the upload IFB sends it on. A packet queued in the
    default class before a slot's flow took its tuple (another process's on
    the same tuple here; at a link's start, packets the veth carried before
    its hook) left the IFB after the slot's flow was noted, with no classed
    slot, and the second pass forgot the note (prio35: gone and back 8-85 ms
    later at each such packet; the downloads between went unclassed). What
    the IFB sends on must leave the notes as they are."""
    with masqueraded_container(pair) as container:
        # the container's veth is an uplink here too: its packets pass the download tree first
        shaper.set_link(Direction.DOWN, LINK)
        shaper.set_link(Direction.UP, STALE_LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        port, local_port = 5653, 40653
        sink = subprocess.Popen(
            nsenter_argv(pair.peer_ns, [sys.executable, "-c", SINK, pair.peer_addr, str(port)])
        )

        def sender(count: int) -> subprocess.Popen[str]:
            argv = [sys.executable, "-c", SENDER, container.host_addr, str(local_port), pair.peer_addr,
                    str(port), str(count)]  # fmt: skip
            return subprocess.Popen(
                nsenter_argv(container.host_ns, argv), stdin=subprocess.PIPE, text=True
            )

        def go(process: subprocess.Popen[str]) -> None:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.close()
            assert process.wait(timeout=20) == 0

        stale, call = sender(400), sender(1)  # 560 KB into a 134 KB leaf; one datagram
        try:
            datapath.set_process_slot(call.pid, SLOT)
            go(stale)  # no slot: the default class, its tuple judged unnoted
            queued = _default_backlog(pair, shaper)
            counted = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))[0]
            go(call)  # the slot's: noted as it passes, classed ahead of the default
            assert eventually(
                lambda: datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))[0] > counted, 5.0
            )
            behind = _default_backlog(pair, shaper)  # still to be sent on after the note
            noted = _noted(datapath, SLOT)
            drained = eventually(lambda: _default_backlog(pair, shaper) == 0, 15.0)
            kept = _noted(datapath, SLOT)
            print(
                f"default class held {queued} B, {behind} B after the note; noted {noted} -> {kept}"
            )
            assert behind > 0 and drained, (queued, behind)
            assert kept == 1, "the IFB's stale packets made the uplink forget the slot's flow"
        finally:
            for process in (stale, call, sink):
                process.kill()
                process.wait()
            datapath.set_process_slot(call.pid, 0)
            _unlinked(shaper)


def _noted(datapath: Datapath, slot: int) -> int:
    """How many forwarded flows the uplinks' egress noted under slot."""
    keys = (ctypes.c_uint8 * (40 * 65536))()  # struct forwarded_flow: 40 bytes
    values = (ctypes.c_uint32 * (4 * 65536))()  # struct forwarded_note: slot, pad, cookie
    read = lookup_batch(datapath._loaded.map_fds["forwarded_flows"], keys, values, 40, 16)
    return sum(1 for at in range(read) if values[4 * at] == slot)


@pytest.mark.parametrize("linked", [False, True], ids=["no-link", "other-slot-linked"])
def test_a_containers_flows_are_noted_only_where_its_slot_is_classed(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, linked: bool
) -> None:
    """A container's application with a slot (a limit, held by its own
    namespace's shaper) whose slot the helper's link tree does not class:
    its forwarded packets were noted all the same (carried_by's reads, a flow
    lookup, an update per new flow: 264 ns a packet more, bench/forwarded_ns.py)
    for nothing, since only a classed slot's downloads are looked up. Not
    with no link (nothing forwarded in use), nor with a link under which only
    another slot is classed; the slot classed, they are."""
    other = {direction: {SLOT + 1: ClassSpec(rate_bps=100_000_000, burst_bytes=1_000_000,
                                              priority=Priority.HIGH)} for direction in Direction}  # fmt: skip
    with masqueraded_container(pair) as container:
        if linked:
            for direction in Direction:
                shaper.set_link(direction, LINK)
        shaper.reconcile(other)  # every device hooked both ways: the veth carries the slot
        port = 5643
        echo = subprocess.Popen(
            nsenter_argv(pair.peer_ns, [sys.executable, "-c", ECHO, pair.peer_addr, str(port)])
        )
        try:

            def ask(local_port: int) -> None:
                _ask(datapath, container.host_ns, (container.host_addr, local_port),
                     (pair.peer_addr, port), SLOT, 0.5)  # fmt: skip

            received = _uplink_bytes(pair)[1]
            ask(40643)
            assert _uplink_bytes(pair)[1] - received > 100_000, "the flow never ran"
            unclassed = _noted(datapath, SLOT)
            shaper.reconcile(
                {d: {**other[d], SLOT: CALL} for d in Direction}
            )  # the slot classed too
            ask(40644)
            classed = _noted(datapath, SLOT)
            print(
                f"noted under slot {SLOT}: {unclassed} unclassed, {classed} once classed (link: {linked})"
            )
            assert unclassed == 0
            assert classed == (
                1 if linked else 0
            )  # a class only for a priority alone: under a link
        finally:
            echo.kill()
            echo.wait()
            _unlinked(shaper)


BLAST = """
import socket, sys, time
blast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
blast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
blast.bind((sys.argv[1], int(sys.argv[2])))
end = time.monotonic() + 1.0
while time.monotonic() < end:
    blast.sendto(bytes(1000), (sys.argv[3], int(sys.argv[4])))
    time.sleep(0.001)
"""


def _packets(netns: str, kind: str, way: str) -> int:
    """Packets the namespace's devices of a kind (ifb, veth) counted one way (rx, tx)."""
    shown = subprocess.run(["ip", "-n", netns, "-j", "-s", "link", "show", "type", kind],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(int(device["stats64"][way]["packets"]) for device in json.loads(shown))


def test_a_flow_noted_here_is_not_classed_in_another_namespace(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper
) -> None:
    """forwarded_flows is one map for the machine and every namespace's
    ingress hook looks tuples up. A routed container (no NAT) with a shaper
    of its own: its application's flow, noted in the helper's namespace,
    goes on sending to it after the socket closed; the container's ingress
    found no socket there, took the helper's noted tuple, and sent each
    packet to its own download IFB with a class it does not hold (counted
    twice as well). Only the namespace that noted a flow classes by it."""
    with extra_link(f"ctnest16-{secrets.token_hex(3)}", pair.host_ns) as routed:
        _run(nsenter_argv(pair.host_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        _run(["ip", "-n", routed.host_ns, "route", "add", "default", "via", routed.peer_addr])
        _run(["ip", "-n", pair.peer_ns, "route", "add", routed.host_addr, "via", pair.host_addr])
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        with entered_netns(routed.host_ns):
            ipr = IPRoute()
            its_own = TcShaper(
                ipr,
                datapath.tc_program,
                NoPacing(),
                retire_after_s=0.0,
                hook_linger_s=0.0,
                instance=JOURNAL_INSTANCE,
            )
        echo = None
        try:  # another application's download limit there: its ingress hooked
            its_own.reconcile(
                {Direction.DOWN: {SLOT + 2: ClassSpec(rate_bps=1_000_000, burst_bytes=100_000)}}
            )
            port, local_port = 5673, 40673
            echo = subprocess.Popen(
                nsenter_argv(pair.peer_ns, [sys.executable, "-c", ECHO, pair.peer_addr, str(port)])
            )
            _ask(datapath, routed.host_ns, (routed.host_addr, local_port), (pair.peer_addr, port),
                 SLOT, 1.0)  # fmt: skip
            echo.kill()
            echo.wait()
            noted = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            assert noted[1] > 100, f"the flow was not classed in the helper's namespace: {noted}"
            received, redirected = (
                _packets(routed.host_ns, "veth", "rx"),
                _packets(routed.host_ns, "ifb", "tx"),
            )
            argv = [
                sys.executable,
                "-c",
                BLAST,
                pair.peer_addr,
                str(port),
                routed.host_addr,
                str(local_port),
            ]
            _run(nsenter_argv(pair.peer_ns, argv))  # to the tuple, no socket left there
            arrived = _packets(routed.host_ns, "veth", "rx") - received
            there = _packets(routed.host_ns, "ifb", "tx") - redirected
            after = datapath.forwarded_matches([SLOT]).get(SLOT, (0, 0))
            print(f"a noted tuple in another namespace: {arrived} packets arrived there, {there} through its IFB; "
                  f"download counts {noted[1]} -> {after[1]}")  # fmt: skip
            assert arrived > 300, "the packets never arrived"
            assert there < arrived / 20, (arrived, there)
            assert after[1] - noted[1] <= arrived + 10, (
                noted,
                after,
                arrived,
            )  # once, in the helper's
        finally:
            if echo is not None:
                echo.kill()
                echo.wait()
            its_own.close()
            ipr.close()
            subprocess.run(
                ["ip", "-n", pair.peer_ns, "route", "del", routed.host_addr], capture_output=True
            )
            _unlinked(shaper)


def test_a_classed_slot_has_a_token_of_its_own_while_classed(
    datapath: Datapath, shaper: TcShaper
) -> None:
    """A forwarded packet's tc_index counts only with its slot's token in
    skb->hash (bpf/datapath.c, forwarded_tokens): drawn when the link tree
    starts classing the slot, kept while it does, none once it stops, a new
    one when it starts again; entry 0: the classing namespace's cookie."""

    def token(slot: int) -> int:
        return int(datapath._maps["forwarded_tokens"].get(slot).value)

    try:
        for direction in Direction:
            shaper.set_link(direction, LINK)
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        first = token(SLOT)
        assert first and token(0) == shaper._netns_cookie
        shaper.reconcile({Direction.UP: {SLOT: CALL}})  # still classed, one way
        assert token(SLOT) == first
        shaper.reconcile({})
        assert token(SLOT) == 0
        shaper.reconcile({direction: {SLOT: CALL} for direction in Direction})
        assert token(SLOT) not in (0, first)
    finally:
        _unlinked(shaper)
    assert token(SLOT) == 0
