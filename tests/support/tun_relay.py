"""One direction of a tun link's relay (tests/support/tun_link.py), run as
a process of its own: every packet one tun device's file reads is written to
the other's, until the process is ended (SIGTERM, or SIGKILL when its parent
goes).

    python tun_relay.py PARENT_PID FROM_FD TO_FD

Why processes, one per direction: as a thread of the caller the relay
needed the caller's interpreter lock between its reads and writes (with a
thread of the caller running Python the link carried 11-26 MiB/s where a
process carried 27-96); and one relay for both directions took a whole core
at a 50 MiB/s download (93-98%) and dropped 20-38
thousand acknowledgements at one tun's 500-packet queue and 3-7 thousand
data packets at the other's in 10 s, 6-13 MB resent. One per direction: none
dropped, none resent, the data's relay 94-97% of a core, the
acknowledgements' 23-25% (docs/benchmarks.md, "The two 50 MiB/s cells").
Standard library only: it runs by path, outside the tests package.
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


def relay(source: int, sink: int) -> None:
    """Write what source reads to sink, for ever. A write the sink's queue
    refuses is dropped, as a link drops it."""
    while True:
        select.select([source], [], [])
        with contextlib.suppress(BlockingIOError):
            while True:
                packet = os.read(source, PACKET_BYTES)
                with contextlib.suppress(BlockingIOError):
                    os.write(sink, packet)


def main(argv: list[str]) -> int:
    parent, first, second = (int(arg) for arg in argv)  # from, to
    # A caller killed without its cleanup must not leave the relay, and with
    # it the tun devices, behind.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it went before the death signal was set
        return 1
    relay(first, second)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
