"""A TCP sender's state, sampled from outside every millisecond: when a limit's
pacing cap reached its socket, and whether it was still recovering losses then.

The socket is borrowed from the sending process (pidfd_getfd, as root) and
read with TCP_INFO; the cap shows as tcpi_max_pacing_rate leaving "unlimited"
(the helper caps a socket with its tag), so the sample at that moment says
what the limit landed on, without asking the helper.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd

UNLIMITED_PACING = 2**64 - 1
TCP_CA_RECOVERY = 3  # tcpi_ca_state: Open 0, Disorder 1, CWR 2, Recovery 3, Loss 4
_INFO_BYTES = 216
_ESTABLISHED = 1


@dataclass(frozen=True)
class Sample:
    at: float
    ca_state: int
    lost: int  # segments marked lost and not yet resent (tcpi_lost)
    retrans_out: int  # resent and not yet acknowledged (tcpi_retrans)
    total_retrans: int
    max_pacing: int
    unacked_new: int  # bytes of new data sent and not acknowledged
    backoff: int  # retransmission timeouts in a row that no acknowledgment has ended (tcpi_backoff)
    acked: int  # bytes acknowledged (tcpi_bytes_acked)
    min_rtt_us: int  # the shortest round trip TCP measured lately (tcpi_min_rtt)

    @property
    def capped(self) -> bool:
        return self.max_pacing != UNLIMITED_PACING

    @property
    def recovering(self) -> bool:
        """Losses known and not yet repaired (CWR, a congestion notice, is not one)."""
        return self.lost > 0 or self.retrans_out > 0 or self.ca_state >= TCP_CA_RECOVERY


def _decode(at: float, info: bytes) -> Sample:
    def u32(offset: int) -> int:
        return int(struct.unpack_from("I", info, offset)[0])

    def u64(offset: int) -> int:
        return int(struct.unpack_from("Q", info, offset)[0])

    return Sample(at, info[1], u32(32), u32(36), u32(100), u64(112), u64(200) - u64(208) - u64(120),
                  info[4], u64(120), u32(148))  # fmt: skip


def _established_tcp(pid: int) -> socket.socket:
    pidfd = os.pidfd_open(pid)
    try:
        for entry in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{entry}").startswith("socket:["):
                    continue
                sock = socket.socket(fileno=pidfd_getfd(pidfd, int(entry)))
            except OSError:
                continue
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_BYTES)
                if info and info[0] == _ESTABLISHED:
                    return sock
            sock.close()
    finally:
        os.close(pidfd)
    raise LookupError(f"process {pid} has no established TCP socket")


class SenderSampler(threading.Thread):
    """Samples the established TCP socket of a process every ~interval_s."""

    def __init__(self, pid: int, interval_s: float = 0.001) -> None:
        super().__init__(daemon=True)
        self._sock = _established_tcp(pid)
        self._interval_s = interval_s
        self._halt = threading.Event()
        self.samples: list[Sample] = []

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_BYTES)
                self.samples.append(_decode(time.monotonic(), info))
                time.sleep(self._interval_s)
        finally:
            self._sock.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5.0)

    def first_capped(self) -> tuple[Sample, Sample] | None:
        """(the last sample before the cap, the first with it), None if never capped."""
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            if after.capped and not before.capped:
                return before, after
        return None

    def timeouts_from(self, when: float) -> int | None:
        """How many retransmission timeouts the sender had from `when` until an
        acknowledgment ended them (its backoff fell): 0 if it had none, None if
        it still backed off when sampling stopped. Counted by the sender's own
        timer, not by when someone woke to look: one timeout means the first
        retransmission it made from `when` on got through."""
        after = [sample for sample in self.samples if sample.at >= when]
        timeouts = 0
        for previous, sample in itertools.pairwise(after):
            if sample.backoff < previous.backoff:
                return timeouts
            timeouts += sample.backoff - previous.backoff
        return None if not after or after[-1].backoff else timeouts

    def at(self, when: float) -> Sample | None:
        """The first sample at or after `when`."""
        return next((sample for sample in self.samples if sample.at >= when), None)
