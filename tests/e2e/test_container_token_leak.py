"""A container's root may not learn the token of an application that has no
socket in its namespace, and with it put its packets in that application's
class at the helper's uplink (review24, of carry22's forwarded_tokens).

A slot's token (bpf/datapath.c, forwarded_tokens) lets the uplink's egress
take a forwarded packet's skb->tc_index: a container's root who reads it from
skb->hash can forge that slot through an IFB of its own (as
tests/e2e/test_container_tc_index_forgery.py does without the token). Our
ingress hook (carry_slot) runs in every namespace the helper shapes: on a
container's own side of its veth too, when an application there has a
download limit. A packet the helper's namespace sends into the container
still has its socket there (ip_rcv orphans it later), so carry_slot wrote the
host application's token into skb->hash of a packet the container receives,
where any socket filter of the container reads it (no capability needed
for that). Measured 2026-12-06 (kernel 6.18): the container saw the host
application's token on each of its ACKs (219), and its forged packets then
landed in that application's critical class at the uplink, 600 of 600. A
token is now written only for a socket of another namespace than the
classing one (the helper's).

carry_token (the container's own egress hook, before its upload IFB) took the
slot from skb->priority, which a container's root sets on its own sockets:
see the second test.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bcc import BPF
from chadthrottle.contract import Direction, RuleScope
from chadthrottle.helper.kernel.bcc_env import prepare_bcc_environment
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.layout import HTB_MAJOR

from bench.bottleneck import Internet, modem
from tests.e2e.conftest import Stack
from tests.e2e.test_container_priority_under_upload_limit import (
    BUFFER_MS,
    DOWN_L2,
    UP_L2,
    _classes,
    assert_none_critical,
    critical_at_the_link,
    critical_keys,
    ifb_in,
)
from tests.support import own_names
from tests.support.container_forger import forging
from tests.support.container_ns import Container, routed_container
from tests.support.helper_calls import call_helper, priorities_undone
from tests.support.netns import app_scope, entered_netns, nsenter_argv, spawn
from tests.support.waiting import eventually

LISTEN_PORT, FORGE_PORT, SENT = 5097, 5096, 600
SERVED = 4_000_000  # bytes the host application downloads from the container: its ACKs
LIMIT = 1_000_000  # of an application in the container: its namespace's hooks
SO_ATTACH_BPF = 50

# The container root's socket filter: every hash its socket receives, counted.
_WATCHER = r"""
BPF_HASH(seen, u32, u64, 256);
int watch(struct __sk_buff *skb) {
    u32 hash = skb->hash;
    u64 zero = 0, *count = seen.lookup_or_try_init(&hash, &zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    return -1;
}
"""


def _device(netns: str) -> str:
    with entered_netns(netns):
        return next(name for _, name in socket.if_nameindex() if name != "lo" and not name.startswith("ctifb"))  # fmt: skip


@contextlib.contextmanager
def _watched_socket(netns: str, kind: int) -> Iterator[tuple[BPF, socket.socket]]:
    """A socket of kind in netns bound to LISTEN_PORT, carrying the filter
    that counts each hash it receives (the program's "seen" map)."""
    program = BPF(text=_WATCHER.encode())
    try:
        function = program.load_func(b"watch", BPF.SOCKET_FILTER)
        with entered_netns(netns):
            sock = socket.socket(socket.AF_INET, kind)
        with sock:
            sock.setsockopt(
                socket.SOL_SOCKET, SO_ATTACH_BPF, function.fd
            )  # a listener's clients' too
            sock.bind(("0.0.0.0", LISTEN_PORT))
            yield program, sock
    finally:
        program.cleanup()


@contextlib.contextmanager
def _serving(netns: str) -> Iterator[BPF]:
    """A TCP server in netns on LISTEN_PORT that sends each client SERVED
    bytes; its sockets carry the filter counting the hashes they receive
    (the client's ACKs)."""
    with _watched_socket(netns, socket.SOCK_STREAM) as (program, listener):
        listener.listen(1)

        def serve() -> None:
            with contextlib.suppress(OSError):
                client, _ = listener.accept()
                with client:
                    client.sendall(b"x" * SERVED)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        yield program
        listener.shutdown(socket.SHUT_RDWR)
        server.join(30)


def _send(netns: str, cgroup: Path, to: str, port: int) -> None:
    sender = spawn(nsenter_argv(netns, [sys.executable, "-c",
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({SENT}):\n    s.sendto(b'x' * 100, ('{to}', {port})); time.sleep(0.002)\n"]),
        cgroup)  # fmt: skip
    sender.communicate(timeout=120)
    assert sender.returncode == 0


@dataclass(frozen=True)
class _Stage:
    internet: Internet
    container: Container
    victim_scope: Path  # a critical application of the helper's namespace, running
    limited_scope: Path  # an application in the container, limited, running
    slot: int  # the victim's critical slot at the uplink


@contextlib.contextmanager
def _limited_beside_critical(
    stack: Stack, tag: str, limited_name: str, direction: Direction
) -> Iterator[_Stage]:
    """A routed container behind a modem; a host application critical under
    a link capacity (its classes in both IFBs of the link tree) and one in
    the container limited in direction, which the container's namespace
    shaper holds (our hook on its side of the veth, its IFB there). The limit
    and link capacity are undone on exit."""
    bus = stack.bus_address
    victim_id = own_names.desktop_id("HostCritical", fresh=True)
    victim = f"app:{victim_id}"
    limited_id = own_names.desktop_id(limited_name, fresh=True)
    limited = f"app:{limited_id}"
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, tag, masquerade=True) as container,
        app_scope(cgroup2_mount(), victim_id) as victim_scope,
        app_scope(cgroup2_mount(), limited_id) as limited_scope,
        priorities_undone(bus, victim),
    ):
        spawn(nsenter_argv(container.netns, ["sleep", "120"]), limited_scope)
        with critical_at_the_link(stack, victim, victim_scope, stack.pair.host_ns) as slot:
            try:
                call_helper(bus, lambda c: c.set_limit(limited, direction, LIMIT, scope=RuleScope.ALL))  # fmt: skip
                # the container's namespace shaper holds it: our hook on its side
                assert eventually(lambda: ifb_in(container.netns), 10.0), "no IFB in the container"
                yield _Stage(internet, container, victim_scope, limited_scope, slot)
            finally:
                call_helper(bus, lambda c: c.clear_limit(limited, scope=RuleScope.ALL))


def test_a_container_does_not_learn_a_host_applications_token(stack: Stack) -> None:
    prepare_bcc_environment()
    with _limited_beside_critical(stack, "rv24", "ContainerDownLimited", Direction.DOWN) as stage:
        container, slot = stage.container, stage.slot
        device = _device(container.netns)
        with _serving(container.netns) as watcher:
            client = spawn(nsenter_argv(stack.pair.host_ns, [sys.executable, "-c",
                "import socket\ns = socket.create_connection"
                f"(('{container.addr}', {LISTEN_PORT}))\nwhile s.recv(65536): pass\n"]),
                stage.victim_scope)  # fmt: skip
            client.communicate(timeout=120)
            assert client.returncode == 0
            seen = {key.value: count.value for key, count in watcher[b"seen"].items()}
        assert sum(seen.values()) >= 10, seen  # the container received the ACKs
        learned = max(seen, key=lambda value: seen[value])
        # its egress program: its packets to FORGE_PORT through its IFB, back
        # from it given the slot and the token it learned
        with forging(container.netns, device, FORGE_PORT, slot, via_ifb=True, token=learned):
            before = _classes(stack.pair.host_ns)
            _send(container.netns, stage.limited_scope, stage.internet.addr, FORGE_PORT)
            after = _classes(stack.pair.host_ns)
    most = sorted(seen.items(), key=lambda kv: -kv[1])[:3]
    assert_none_critical(before, after, SENT, f"slot {slot}: hashes the container saw {most}, ")


def test_a_containers_socket_priority_does_not_carry_another_slot(stack: Stack) -> None:
    """carry_token gives a packet in the container's namespace the slot and
    token of the class its skb->priority names. A container's root sets any
    priority on its own sockets (SO_PRIORITY with CAP_NET_ADMIN there): the
    helper's class ids (c7ad:slot) are no secret, and a packet of a socket
    nobody limits keeps it. With an upload limit of an application in the
    container (our egress hook there), such a socket's packets were given a
    host application's slot and token: 600 of 600 in its critical class at
    the uplink (2026-12-06). The slot is now the socket's own."""
    with _limited_beside_critical(stack, "rv24p", "ContainerUpLimited", Direction.UP) as stage:
        slot = stage.slot
        before = _classes(stack.pair.host_ns)
        # the container root's process: in no application, its priority the victim's class
        sender = subprocess.run(nsenter_argv(stage.container.netns, [sys.executable, "-c",
            "import socket, struct, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, struct.pack('I', {(HTB_MAJOR << 16) | slot}))\n"
            f"for _ in range({SENT}):\n    s.sendto(b'x' * 100, ('{stage.internet.addr}', {FORGE_PORT})); time.sleep(0.002)\n"]),
            capture_output=True, text=True, timeout=120)  # fmt: skip
        assert sender.returncode == 0, sender.stderr
        after = _classes(stack.pair.host_ns)
    assert_none_critical(before, after, SENT, f"slot {slot}: ")


@contextlib.contextmanager
def _neighbour(pair_ns: str, container: Container) -> Iterator[str]:
    """A second container on the first one's bridge (as docker0 holds both):
    a namespace of its own, its veth's other end a port of that bridge, an
    address on the same /24. Yields its address; removed on exit."""
    tag = secrets.token_hex(3)
    name, here, there = f"ctcrv24n-{tag}", f"ctn{tag}", f"ctm{tag}"
    address = _neighbour_address(container)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", pair_ns, "link", "add", here, "type", "veth", "peer", "name", there,
                        "netns", name], check=True)  # fmt: skip
        subprocess.run(["ip", "-n", pair_ns, "link", "set", here, "master", container.bridge, "up"], check=True)  # fmt: skip
        subprocess.run(["ip", "-n", name, "addr", "add", f"{address}/24", "dev", there], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", there, "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "-n", pair_ns, "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_a_container_on_the_same_bridge_does_not_see_a_token(stack: Stack) -> None:
    """A prioritized application in a container sends to another container
    on the same bridge (without br_netfilter's iptables call, as LXD's or
    libvirt's bridge): the bridge port's ingress (carry_slot) writes its
    slot's token, the frame keeps its socket (nothing routes it), and the
    other container received it with the token in skb->hash, one value on
    all 160 packets of the application's 8 flows (2026-12-06). Our egress
    hook on the receiving port now drops a token it finds on a packet that
    still has its socket (with the iptables call the socket is gone there
    and the forwarded path dropped it already)."""
    bus = stack.bus_address
    app_id = own_names.desktop_id("BridgedCritical", fresh=True)
    app = f"app:{app_id}"
    prepare_bcc_environment()
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, "rv24b", masquerade=True, bridge=True) as container,
        _neighbour(stack.pair.host_ns, container) as neighbour,
        _bridge_nf(stack.pair.host_ns, 0),
        app_scope(cgroup2_mount(), app_id) as scope,
        priorities_undone(bus, app),
        critical_at_the_link(stack, app, scope, container.netns),
        _watched_socket(neighbour, socket.SOCK_DGRAM) as (program, _),
    ):
        address = _neighbour_address(container)
        sender = spawn(nsenter_argv(container.netns, [sys.executable, "-c",
            "import socket, time\nsockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]\n"
            f"for _ in range(20):\n    for s in sockets: s.sendto(b'x' * 100, ('{address}', {LISTEN_PORT})); time.sleep(0.002)\n"]),
            scope)  # fmt: skip
        sender.communicate(timeout=120)
        assert sender.returncode == 0
        seen = {key.value: count.value for key, count in program[b"seen"].items()}
    print(f"\nhashes the neighbour saw: {seen}")
    assert sum(seen.values()) >= 80, seen  # it received them
    # a flow's own hash (or none: 0) on at most its 20 packets, not one token on all
    assert all(count <= 20 for value, count in seen.items() if value), seen


def _neighbour_address(container: Container) -> str:
    return container.addr.rsplit(".", 1)[0] + ".77"


@contextlib.contextmanager
def _bridge_nf(netns: str, value: int) -> Iterator[None]:
    """net.bridge.bridge-nf-call-iptables in netns for the block (Docker sets
    1; a bridge of LXD's or libvirt's, or none loaded: as 0)."""
    key = "net.bridge.bridge-nf-call-iptables"
    was = subprocess.run(nsenter_argv(netns, ["sysctl", "-n", key]), capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    subprocess.run(nsenter_argv(netns, ["sysctl", "-qw", f"{key}={value}"]), check=True)
    try:
        yield
    finally:
        subprocess.run(nsenter_argv(netns, ["sysctl", "-qw", f"{key}={was}"]), check=True)


def test_container_to_container_traffic_is_not_held_by_the_link_tree(stack: Stack) -> None:
    """A prioritized application in one routed container sends to another
    container of the same host: its packets never leave by the uplink, yet
    the other container's veth is an uplink to the tc shaper, whose egress
    hook takes the slot (carry_slot's tc_index and token, from a hooked
    device) and classes them in the link tree (600 of 600 in the critical
    class on 2026-12-06): held to the link's capacity and counted as
    forwarded to the internet. Now the forwarded path classes a packet only
    where it leaves by one of the link's uplinks (ON_LINK in
    carrying_devices)."""
    bus = stack.bus_address
    app_id = own_names.desktop_id("RoutedCritical", fresh=True)
    app = f"app:{app_id}"
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, "rv24r", masquerade=True) as container,
        routed_container(stack.pair, None, "rv24s", masquerade=True) as other,
        app_scope(cgroup2_mount(), app_id) as scope,
        priorities_undone(bus, app),
        critical_at_the_link(stack, app, scope, container.netns),
    ):
        with entered_netns(other.netns):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sink:
            sink.bind(("0.0.0.0", LISTEN_PORT))
            before = _classes(stack.pair.host_ns)
            _send(container.netns, scope, other.addr, LISTEN_PORT)
            after = _classes(stack.pair.host_ns)
    grew = {key: n - before.get(key, ("", 0))[1] for key, (_, n) in after.items()}
    print(f"\nclasses grew {grew}")
    classed = max(n for key, n in grew.items() if key in critical_keys(after))
    assert classed < SENT // 10, grew
