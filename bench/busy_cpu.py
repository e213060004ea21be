"""The machine's busy CPU time in a window, less the bench's own and other processes':
the stream's CPU wherever it ran, for bench/cpu_per_gb.py.

The tasks' CPU clocks (bench/overhead_probes.py task_ns) count softirq work only when
it runs in one of the stream's tasks. With BBR (this machine's default) a paced
socket sends from an hrtimer softirq; when that timer fires on an idle CPU the whole
send (and on a veth the receive it triggers) runs in the idle task, counted by no
task clock. How much lands there changes from window to window with what the CPU was
doing, so the clocks both miss part of the stream and spread. The idle time read here
is cpuidle's residency per CPU (sysfs, microseconds), counted until each idle state's
exit, before the interrupt that ends it is handled: wall time less it is every
instruction the CPU ran, the idle loop's own included. Others' CPU comes from
/proc/PID/stat ticks (USER_HZ), coarse, and near zero in the quiet blocks the verdict
reads; the bench's own from its process CPU clock.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CPU_ROOT = Path("/sys/devices/system/cpu")
_USER_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class BusyReading:
    at_ns: int
    idle_us: tuple[int, ...]  # per CPU; empty when cpuidle is not there
    own_ns: int  # the bench process's CPU clock


class BusyClock:
    """Reads the idle residency of every CPU that has cpuidle states."""

    def __init__(self, root: Path = CPU_ROOT) -> None:
        self.states = [
            sorted(cpu.glob("cpuidle/state*/time"))
            for cpu in sorted(root.glob("cpu[0-9]*"))
            if (cpu / "cpuidle").is_dir()
        ]
        self.states = [files for files in self.states if files]

    def read(self) -> BusyReading:
        at = time.monotonic_ns()
        idle = tuple(sum(int(f.read_text()) for f in files) for files in self.states)
        return BusyReading(at, idle, time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID))


def busy_ns(first: BusyReading, last: BusyReading, others_ticks: int) -> float:
    """Busy ns over every CPU between the readings, less the bench's and others' CPU;
    -1 when no idle time could be read (no cpuidle, or a CPU went offline) or others'
    is unknown: their ticks fell (a process exited and its lifetime's ticks left the
    sum; its parent's cutime gets them only if the parent is not ours), which would
    count their lifetime as the stream's (27.9 ns a byte in one window, 01:30 UTC)."""
    if not first.idle_us or len(first.idle_us) != len(last.idle_us) or others_ticks < 0:
        return -1.0
    wall = last.at_ns - first.at_ns
    busy = sum(wall - (b - a) * 1000 for a, b in zip(first.idle_us, last.idle_us, strict=True))
    return busy - (last.own_ns - first.own_ns) - others_ticks * 1e9 / _USER_HZ
