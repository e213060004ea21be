"""The relay of a tun link (tests/support/tun_link.py), run as a process of
its own: every packet one tun device's file reads is written to the other's,
until the process is ended (SIGTERM, or SIGKILL when its parent goes).

    python tun_relay.py PARENT_PID FD FD

Why a process and not a thread of the caller: as a thread it shared the
interpreter lock with the bench's samplers (bench/shaper_bytes.py parses a
netlink dump every 20 ms), and each of its reads and writes gave the lock up
and waited for it again; a 50 MiB/s download over the link then dropped
packets at the far tun's 500-packet queue and read short of its limit
(docs/benchmarks.md, "The tun cell's relay"). Standard library only: it runs
by path, outside the tests package.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys

PR_SET_PDEATHSIG = 1
PACKET_BYTES = 65536


def relay(ends: dict[int, int]) -> None:
    """Write what one end reads to the other, for ever. A write the other
    end's queue refuses is dropped, as a link drops it."""
    while True:
        readable, _, _ = select.select(list(ends), [], [])
        for fd in readable:
            with contextlib.suppress(BlockingIOError):
                while True:
                    packet = os.read(fd, PACKET_BYTES)
                    with contextlib.suppress(BlockingIOError):
                        os.write(ends[fd], packet)


def main(argv: list[str]) -> int:
    parent, first, second = (int(arg) for arg in argv)
    # A caller killed without its cleanup must not leave the relay, and with
    # it the tun devices, behind.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it went before the death signal was set
        return 1
    relay({first: second, second: first})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
