"""Changing an HTB class's rate with a hand-built netlink message.

It is the one tc message the helper sends often: every SetLimit and every step
of a slider. pyroute2 spends about 0.9 ms of Python on it, most of that on two
256-entry rate tables that the kernel has not needed since Linux 3.11 once the
rate names its link layer. This sends the same class parameters without them,
in a few tens of microseconds, and waits for the kernel's answer. Adding and
deleting classes, which are rare, stay with pyroute2.

The socket must be in the network namespace of the pyroute2 socket it stands
in for (an ifindex means a different device in another namespace):
ClassChanger.beside() checks that and gives None when it is not.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Callable

from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel.namespaces import netns_cookie_of_fd
from pyroute2.netlink.rtnl.tcmsg.common import calc_xmittime

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
RTM_NEWTCLASS = 40
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_HTB_PARMS, TCA_HTB_RATE64, TCA_HTB_CEIL64 = 1, 6, 7
TC_LINKLAYER_ETHERNET = 1  # the ratespec says how to count; no rate table needed
U32_MAX = (1 << 32) - 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
_RATESPEC = struct.Struct("=BBHhHI")  # cell_log, linklayer, overhead, cell_align, mpu, rate
_HTB_OPT_TAIL = struct.Struct("=IIIII")  # buffer, cbuffer, quantum, level, prio
_ERROR = struct.Struct("=i")


def attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _ratespec(rate_bps: int) -> bytes:
    return _RATESPEC.pack(0, TC_LINKLAYER_ETHERNET, 0, 0, 0, min(rate_bps, U32_MAX))


def htb_class_message(
    seq: int,
    ifindex: int,
    classid: int,
    parent: int,
    rate_bps: int,
    burst_bytes: int,
    priority: int,
    quantum: int,
) -> bytes:
    """RTM_NEWTCLASS without NLM_F_CREATE: change an existing class, rate = ceil."""
    buffer_ticks = calc_xmittime(rate_bps, burst_bytes)  # the unit tc and pyroute2 use
    parms = (
        _ratespec(rate_bps)
        + _ratespec(rate_bps)
        + _HTB_OPT_TAIL.pack(buffer_ticks, buffer_ticks, quantum, 0, priority)
    )
    options = attribute(TCA_HTB_PARMS, parms)
    if rate_bps > U32_MAX:
        options += attribute(TCA_HTB_RATE64, struct.pack("=Q", rate_bps))
        options += attribute(TCA_HTB_CEIL64, struct.pack("=Q", rate_bps))
    body = _TCMSG.pack(socket.AF_UNSPEC, ifindex, classid, parent, 0)
    body += attribute(TCA_KIND, b"htb\0") + attribute(TCA_OPTIONS, options)
    return (
        _HEADER.pack(_HEADER.size + len(body), RTM_NEWTCLASS, NLM_F_REQUEST | NLM_F_ACK, seq, 0)
        + body
    )


class ClassChanger:
    """One netlink socket for class changes; used from one thread at a time."""

    def __init__(self) -> None:
        self._socket = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self._socket.bind((0, 0))
        self._seq = itertools.count(1)

    @classmethod
    def beside(cls, netlink_descriptor: int) -> ClassChanger | None:
        """A changer in the same namespace as that netlink socket, else None."""
        try:
            changer = cls()
            if netns_cookie_of_fd(changer._socket.fileno()) == netns_cookie_of_fd(
                netlink_descriptor
            ):
                return changer
            changer.close()
        except OSError:
            pass
        return None

    def change(self, ifindex: int, classid: int, parent: int, rate_bps: int, burst_bytes: int,
               priority: int, quantum: int) -> None:  # fmt: skip
        """KernelError if the kernel refuses (e.g. the class or device is gone)."""
        self.request(
            lambda seq: htb_class_message(
                seq, ifindex, classid, parent, rate_bps, burst_bytes, priority, quantum
            ),
            f"tc change-class on interface {ifindex}",
        )

    def request(self, build: Callable[[int], bytes], what: str) -> None:
        """Send the message build(seq) makes and wait for the kernel's answer;
        KernelError naming what if it refuses."""
        seq = next(self._seq) & U32_MAX
        try:
            self._socket.send(build(seq))
            code = self._ack(seq)
        except OSError as error:
            raise KernelError(f"{what} failed: {error}", error.errno or 0) from error
        if code:
            raise KernelError(f"{what} failed: {os.strerror(code)} ({code})", code)

    def query(self, build: Callable[[int], bytes], what: str) -> list[tuple[int, bytes]]:
        """Send a get request build(seq) makes (with NLM_F_ACK) and give the
        kernel's answers before its ack, each as (message type, body);
        KernelError naming what if it refuses."""
        seq = next(self._seq) & U32_MAX
        replies: list[tuple[int, bytes]] = []
        try:
            self._socket.send(build(seq))
            code = self._ack(seq, replies)
        except OSError as error:
            raise KernelError(f"{what} failed: {error}", error.errno or 0) from error
        if code:
            raise KernelError(f"{what} failed: {os.strerror(code)} ({code})", code)
        return replies

    def _ack(self, seq: int, replies: list[tuple[int, bytes]] | None = None) -> int:
        """The errno the kernel answered this request with (0: done); the
        request's other answers go to replies."""
        while True:
            data = self._socket.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, reply_seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError(errno.EPROTO, "malformed netlink reply")
                if kind == NLMSG_ERROR and reply_seq == seq:
                    (code,) = _ERROR.unpack_from(data, offset + _HEADER.size)
                    return -code
                if replies is not None and reply_seq == seq:
                    replies.append((kind, data[offset + _HEADER.size : offset + length]))
                offset += (length + 3) & ~3

    def close(self) -> None:
        self._socket.close()
