"""What the helper's shaper passed, sampled: the L3 bytes its limited HTB classes
on one namespace's IFB have sent, read every few tens of milliseconds from a
thread inside that namespace.

Why: what an application reads lags the shaper by its own scheduling. On this
2-core machine at load 3-8, a sink descheduled for 0.1-0.4 s read 0.1 of the
limit in one 0.25 s window and 1.2-2 times it in the next, and bench/paths.py
reported "settled after 3.9 s" for a limit the shaper held from 0.3 s on. The
class counters say when the limiter converged; the application's reads say
what it saw.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from types import TracebackType

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ACK_MINOR, DEFAULT_MINOR, LINK_MINOR
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.tc_ownership import IFB_ALIASES
from pyroute2 import IPRoute

CLONE_NEWNET = 0x40000000
ETHERNET_HEADER_BYTES = 14  # HTB counts from the link-layer header; limits are at L3
NOT_APP_MINORS = {0, DEFAULT_MINOR, LINK_MINOR, ACK_MINOR}
# A reading that took longer is dropped: a sample timed 5 ms off moves a
# 0.25 s window by 2% (bench/paths.py prints how many were dropped).
MAX_READ_S = 0.004


def limited_class_bytes(ipr: IPRoute, ifindex: int) -> int:
    """L3 bytes sent by the application classes of the HTB tree on ifindex."""
    total = 0
    for message in ipr.get_classes(index=ifindex):
        handle = message["handle"]
        if handle >> 16 != HTB_MAJOR or handle & 0xFFFF in NOT_APP_MINORS:
            continue
        stats = message.get_attr("TCA_STATS2")
        basic = stats.get_attr("TCA_STATS_BASIC") if stats is not None else None
        if basic is not None:
            total += basic["bytes"] - ETHERNET_HEADER_BYTES * basic["packets"]
    return total


class ShaperBytes:
    """(monotonic seconds, cumulative L3 bytes) of the limited classes of the
    direction's IFB in the named network namespace, while entered."""

    def __init__(self, netns: str, direction: Direction, interval_s: float = 0.02) -> None:
        self.samples: list[tuple[float, float]] = []
        self.dropped = 0  # readings that took longer than MAX_READ_S
        self._netns, self._alias, self._interval_s = netns, IFB_ALIASES[direction], interval_s
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shaper-bytes", daemon=True)

    def __enter__(self) -> ShaperBytes:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join(timeout=5)
        if self._error is not None and kind is None:
            raise RuntimeError(
                f"reading the shaper in {self._netns} failed: {self._error}"
            ) from self._error

    def _run(self) -> None:
        try:
            fd = os.open(f"/run/netns/{self._netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:  # setns moves this thread only; the socket made below stays in the namespace
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            with IPRoute() as ipr:
                ifindexes = [
                    link["index"]
                    for link in ipr.get_links()
                    if link.get_attr("IFLA_IFALIAS") == self._alias
                ]
                if not ifindexes:
                    raise LookupError(f"no IFB with alias {self._alias!r}")
                while not self._stop.is_set():
                    asked = time.monotonic()
                    total = sum(limited_class_bytes(ipr, index) for index in ifindexes)
                    answered = time.monotonic()
                    if (
                        answered - asked <= MAX_READ_S
                    ):  # else this thread was held up: when it was read is unknown
                        self.samples.append(((asked + answered) / 2, float(total)))
                    else:
                        self.dropped += 1
                    self._stop.wait(self._interval_s)
        except (OSError, LookupError) as error:
            self._error = error
