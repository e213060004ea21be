"""A link without a link-layer header between the two test namespaces, as a
VPN (tun, WireGuard) or PPP gives a desktop: a tun device in each namespace,
and a thread of this process moving packets between the two."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import select
import struct
import subprocess
import threading
from collections.abc import Iterator

from tests.support.netns import NetnsPair, entered_netns

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


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


def _relay(ends: dict[int, int], stop: threading.Event, failures: list[OSError]) -> None:
    """Write what one end reads to the other, until stop is set."""
    try:
        while not stop.is_set():
            readable, _, _ = select.select(list(ends), [], [], 0.05)
            for fd in readable:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        packet = os.read(fd, 65536)
                        with contextlib.suppress(
                            BlockingIOError
                        ):  # the other end's queue is full: dropped
                            os.write(ends[fd], packet)
    except OSError as error:
        failures.append(error)


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
    stop = threading.Event()
    failures: list[OSError] = []
    relay = threading.Thread(target=lambda: None)
    try:
        fds.append(_open_tun(pair.host_ns, name, tunneled.host_addr, tunneled.peer_addr))
        fds.append(_open_tun(pair.peer_ns, name, tunneled.peer_addr, tunneled.host_addr))
        relay = threading.Thread(target=_relay, args=({fds[0]: fds[1], fds[1]: fds[0]}, stop, failures),
                                 daemon=True)  # fmt: skip
        relay.start()
        yield tunneled
    finally:
        stop.set()
        if relay.is_alive():
            relay.join(timeout=5)
        for fd in fds:  # a tun device goes when its last file is closed
            os.close(fd)
    if failures:
        raise RuntimeError(f"the tun link stopped relaying: {failures[0]}")
