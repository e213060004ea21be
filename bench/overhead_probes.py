"""Where CPU time goes, for bench/overhead.py: per-process run time from the
scheduler, other processes' CPU, the kernel's per-program run-time statistics
and perf samples split into our programs, the cgroup-BPF hook and tc."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

from chadthrottle.helper.kernel import bpf_syscalls

# Where the CPU goes in B, from perf samples (no PMU in this VM: cpu-clock): our programs and the
# helpers they call; and the kernel's cgroup-BPF hook around them (runs only when programs are attached).
PROGRAM_SYMBOLS = (
    "chadt_",
    "bpf_sk_storage_get",
    "htab_lru_percpu_map_lookup_elem",
    "lookup_nulls_elem_raw",
    "bpf_skb_load_bytes",
    "bpf_sk_fullsock",
    "bpf_skc_lookup_tcp",
    "__bpf_sk_lookup",
    "bpf_sk_release",
)
HOOK_SYMBOLS = ("__cgroup_bpf_run_filter_skb", "__bpf_prog_run_save_cb", "bpf_prog_run_array_cg")
TC_SYMBOL_PREFIXES = (
    "htb_",
    "qdisc_",
    "__qdisc_",
    "sch_direct_xmit",
    "dequeue_skb",
    "pfifo_",
    "bfifo_",
    "ifb_",
    "tcf_",
    "cls_bpf",
    "tc_run",
    "psched_",
    "sch_handle_",
    "ingress_",
)  # qdiscs, filters, IFB
IDLE_SYMBOLS = ("pv_native_safe_halt", "default_idle", "cpu_idle_poll", "acpi_idle_do_entry")


def task_ns(pid: int) -> int:
    """Run time of a process's threads, ns, by its CPU clock (clock_getcpuclockid): the
    scheduler's clock brought up to date for a thread running right now, where schedstat
    lags by up to a tick (4 ms at HZ=250: 5-10% of a 0.3 s window's CPU). schedstat
    (summed over live threads) when the clock cannot be read."""
    with contextlib.suppress(OSError):
        return time.clock_gettime_ns(((~pid) << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, SCHED)
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                total += int((task / "schedstat").read_text().split()[0])
    return total


def ksoftirqd_pids(proc: Path = Path("/proc")) -> list[int]:
    """As bytes: a process's name is any bytes (a test's may not be UTF-8), and one
    such name beside a bench stopped it before its first window."""
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_bytes().startswith(b"ksoftirqd/"):
                    pids.append(int(entry.name))
    return pids


def cpu_ticks_of_all(exclude: set[int], proc: Path = Path("/proc")) -> int:
    """utime + stime (+ reaped children's) of every process but `exclude`, in USER_HZ ticks.
    As bytes: a name that is not UTF-8 must not drop its process's CPU from the sum."""
    total = 0
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) not in exclude:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total


def chadt_programs() -> dict[int, str]:
    out = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {p["id"]: p["name"] for p in json.loads(out) if p.get("name", "").startswith("chadt_")}


def run_stats(prog_ids: dict[int, str]) -> dict[int, tuple[int, int]]:
    stats = {}
    for prog_id in prog_ids:
        with contextlib.suppress(OSError):
            fd = bpf_syscalls.open_program(prog_id)
            try:
                stats[prog_id] = bpf_syscalls.program_run_stats(fd)
            finally:
                os.close(fd)
    return stats


def perf_share(seconds: float) -> tuple[float, float, float, float]:
    """(busy, programs, hook, tc) shares of every CPU's cpu-clock samples over `seconds`."""
    data = Path(f"/tmp/chadthrottle-overhead-{os.getpid()}.perf")
    try:
        subprocess.run(
            ["perf", "record", "-a", "-F", "2000", "-o", str(data), "--", "sleep", str(seconds)],
            capture_output=True,
            check=True,
        )
        report = subprocess.run(
            [
                "perf",
                "report",
                "-i",
                str(data),
                "--no-children",
                "--sort",
                "sym",
                "--stdio",
                "--percent-limit",
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        data.unlink(missing_ok=True)
    total = idle = programs = hook = tc = 0.0
    for line in report.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith("#") or not fields[0].endswith("%"):
            continue
        share, symbol = float(fields[0].rstrip("%")), fields[-1]
        total += share
        idle += share if symbol in IDLE_SYMBOLS else 0.0
        programs += share if any(name in symbol for name in PROGRAM_SYMBOLS) else 0.0
        hook += share if symbol in HOOK_SYMBOLS else 0.0
        tc += share if symbol.startswith(TC_SYMBOL_PREFIXES) else 0.0
    busy = max(1e-9, total - idle)
    return busy / max(1e-9, total), programs / busy, hook / busy, tc / busy
