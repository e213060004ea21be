"""A link without a link-layer header between the two test namespaces, as a
VPN (tun, WireGuard) or PPP gives a desktop: a tun device in each namespace,
and a relay process (tests/support/tun_relay.py) moving packets between the
two, as a VPN daemon would."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.netns import NetnsPair, entered_netns

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
RELAY_PROGRAM = Path(__file__).with_name("tun_relay.py")
RELAY_STOP_S = 5.0


def open_tun(name: str) -> int:
    """A non-blocking tun device (no offloads, no packet info) in the calling
    thread's namespace; it goes when its last file is closed."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_tun(netns: str, name: str, address: str, peer: str) -> int:
    with entered_netns(netns):  # a tun device is made in the namespace of whoever opens it
        fd = open_tun(name)
    try:
        subprocess.run(
            ["ip", "-n", netns, "addr", "add", address, "peer", peer, "dev", name], check=True
        )
        subprocess.run(["ip", "-n", netns, "link", "set", name, "up"], check=True)
    except BaseException:
        os.close(fd)  # and the device with it
        raise
    return fd


def _start_relay(first: int, second: int) -> subprocess.Popen[bytes]:
    """The relay from one tun file to another, a process of its own
    (tun_relay.py says why). It is killed when the thread that started it ends."""
    return subprocess.Popen([sys.executable, "-I", str(RELAY_PROGRAM), str(os.getpid()), str(first), str(second)],
                            pass_fds=(first, second), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


@contextlib.contextmanager
def tun_link(pair: NetnsPair) -> Iterator[NetnsPair]:
    """The pair, with its addresses on a tun link between the namespaces
    (the veth stays, with no route for them). The devices go with the block."""
    tag = secrets.token_hex(2)
    subnet = f"10.{250 + int(tag[0], 16) % 5}.{int(tag[1:3], 16)}"
    name = f"ctt{tag}"
    tunneled = dataclasses.replace(pair, peer_addr=f"{subnet}.1", host_addr=f"{subnet}.2", host_if=name,
                                   peer_if=name)  # fmt: skip
    fds: list[int] = []
    relays: list[subprocess.Popen[bytes]] = []  # one per direction: a 50 MiB/s download
    died: dict[int, str] = {}  # took a whole core with one relay for both (2026-12-05)
    stuck: list[int] = []
    try:
        fds.append(_open_tun(pair.host_ns, name, tunneled.host_addr, tunneled.peer_addr))
        fds.append(_open_tun(pair.peer_ns, name, tunneled.peer_addr, tunneled.host_addr))
        relays.append(_start_relay(fds[0], fds[1]))
        relays.append(_start_relay(fds[1], fds[0]))
        yield tunneled
    finally:
        try:
            for relay in relays:
                if (code := relay.poll()) is not None:
                    died[relay.pid] = f"exit {code}"
                else:
                    relay.terminate()
            stuck = [relay.pid for relay in relays if not _stopped(relay)]
        finally:
            for fd in fds:  # a tun device goes when its last file is closed (the relays' are)
                os.close(fd)
            for relay in relays:
                if relay.stderr is not None:
                    with relay.stderr:
                        if relay.pid in died:
                            said = relay.stderr.read().decode(errors="replace").strip()
                            died[relay.pid] += f": {said}"
    errors = [f"stopped relaying, {why}" for why in died.values()]
    errors += [f"relay {pid} did not stop in {RELAY_STOP_S} s of SIGTERM (killed)" for pid in stuck]
    if errors:
        raise RuntimeError(f"the tun link's relays: {'; '.join(errors)}")


def _stopped(relay: subprocess.Popen[bytes]) -> bool:
    """Whether the relay ended within RELAY_STOP_S of its SIGTERM. One that
    did not is killed and waited for: it holds both tun files, and with them
    the devices, and its caller's own files are closed all the same."""
    try:
        relay.wait(timeout=RELAY_STOP_S)
        return True
    except subprocess.TimeoutExpired:
        relay.kill()
        relay.wait()
        return False
