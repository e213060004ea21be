"""Which end of bench/cpu_per_gb.py's stream enters the cgroup-BPF hooks
(--hooked-end): both (the programs on the cgroup v2 root, as a helper puts
them: every socket on the machine, so both ends of the veth pair) or local
(the same programs on a child cgroup holding only the iperf3 client, the far
end, standing for another machine, in a sibling cgroup).

The kernel enters a socket's skb hooks only when the socket's cgroup, fixed
when the socket was made (sk_cgrp_data), has a non-empty effective program
array for the hook (cgroup_bpf_sock_enabled(), include/linux/bpf-cgroup.h);
an effective array holds the programs of the cgroup and of its ancestors. So
programs on the local end's cgroup run for its sockets' packets only (data
out and ACKs in on an upload, data in and ACKs out on a download), as on a
transfer with another machine. Each process enters its cgroup before it execs
(no socket of its is made outside it), and the far end's accepted sockets
take its listener's cgroup. check() reads what the kernel did: the programs
effective on each end's cgroup, and their runs per GB.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.cgroups import cgroup2_mount, process_cgroup_path

from bench.overhead_probes import run_stats

HOOKED_ENDS = ("both", "local")
SKB_HOOKS = ("cgroup_inet_ingress", "cgroup_inet_egress")
CGROUP_PREFIX = "ctbench-hooked-"  # killed with SIGKILL, a run leaves these: rmdir by hand


@dataclass(frozen=True)
class Ends:
    """attach_at: the cgroup the compared programs go on (None: the root);
    local, far: the cgroups the client and the server run in (None: the bench's own)."""

    attach_at: Path | None
    local: Path | None
    far: Path | None


@dataclass
class HookRuns:
    """One check of the kernel's statistics with B on: what moved (bytes of the stream;
    packets both ways on the veth, data and ACKs), B's programs effective on each end's
    cgroup ([attach type, name, id]), B's skb programs' runs."""

    direction: str
    kind: str
    moved_bytes: int
    packets: int
    effective: dict[str, list[list[str]]]
    runs: dict[str, int]
    run_ns: dict[str, int]


def in_cgroup(argv: list[str], cgroup: Path | None) -> list[str]:
    """argv run from a shell that first moves itself into cgroup, then execs it
    (same pid: the process and every socket it makes are in cgroup)."""
    if cgroup is None:
        return argv
    return ["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"', "sh", *argv]


@contextlib.contextmanager
def hooked_end(which: str) -> Iterator[Ends]:
    """Ends for --hooked-end; for local, two fresh cgroups under the root, removed
    after (whatever still runs in them killed first), even on failure."""
    if which == "both":
        yield Ends(None, None, None)
        return
    base = cgroup2_mount() / f"{CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    local, far = Path(f"{base}-local"), Path(f"{base}-far")
    made: list[Path] = []
    try:
        for cgroup in (local, far):
            cgroup.mkdir()
            made.append(cgroup)
        yield Ends(local, local, far)
    finally:
        for cgroup in made:
            _remove(cgroup)


def _remove(cgroup: Path) -> None:
    deadline = time.monotonic() + 5
    while pids := (cgroup / "cgroup.procs").read_text().split():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cgroup.rmdir()


def parse_effective(bpftool_json: str) -> list[list[str]]:
    """[attach type, name, id] of `bpftool -j cgroup show PATH [effective]`."""
    return [
        [p["attach_type"], p["name"], str(p["id"])]
        for p in json.loads(bpftool_json.strip() or "[]")
    ]


def cgroup_programs(cgroup: Path, effective: bool) -> list[list[str]]:
    """The programs attached to cgroup, or (effective) those the kernel runs for its sockets."""
    argv = ["bpftool", "-j", "cgroup", "show", str(cgroup)] + (["effective"] if effective else [])
    return parse_effective(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def attached_ids(attach_at: Path | None) -> set[int]:
    """Ids of the programs attached at attach_at (None: the root), whoever's."""
    return {int(i) for _type, _name, i in cgroup_programs(attach_at or cgroup2_mount(), False)}


def check(attach_at: Path | None, not_b: set[int], ends: dict[str, int],
          window: Callable[[], tuple[int, int]], direction: str, kind: str) -> HookRuns:  # fmt: skip
    """With B on: B's programs (those attached at attach_at, None: the root, but not_b:
    what was there with A on, such as other datapaths'), those of them effective on each
    end's cgroup (ends: {"local": client pid, "far": server pid}), and B's skb programs'
    runs while window() measures the stream and returns the (bytes, packets) it moved. The
    kernel's run-time statistics are on only for the window (two clock reads a run)."""
    root = cgroup2_mount()
    ours = {int(i): name for _type, name, i in cgroup_programs(attach_at or root, False)
            if int(i) not in not_b}  # fmt: skip
    effective = {}
    for end, pid in ends.items():
        cgroup = process_cgroup_path(pid, root)
        if cgroup is None:
            raise RuntimeError(f"the {end} end's process {pid} has exited")
        effective[end] = [p for p in cgroup_programs(cgroup, True) if int(p[2]) in ours]
    skb = {int(i): name for progs in effective.values() for attach_type, name, i in progs
           if attach_type in SKB_HOOKS}  # fmt: skip
    stats_fd = bpf_syscalls.enable_run_time_stats()
    try:
        before = run_stats(skb)
        moved, packets = window()
        after = run_stats(skb)
    finally:
        os.close(stats_fd)
    runs: dict[str, int] = {}
    run_ns: dict[str, int] = {}
    for prog_id, name in skb.items():
        if prog_id in before and prog_id in after:
            run_ns[name] = run_ns.get(name, 0) + after[prog_id][0] - before[prog_id][0]
            runs[name] = runs.get(name, 0) + after[prog_id][1] - before[prog_id][1]
    return HookRuns(direction, kind, moved, packets, effective, runs, run_ns)


def per_gb(checks: Iterable[HookRuns]) -> tuple[dict[str, float], dict[str, float], float]:
    """Over several checks of one stream: each program's runs per GB moved, its ns a run,
    and all runs per packet on the veth: 2 when both ends' sockets enter the hooks (each
    packet leaves one and reaches the other), 1 when one end's do."""
    checks = list(checks)
    gigabytes = sum(c.moved_bytes for c in checks) / 1e9
    packets = sum(c.packets for c in checks)
    names = sorted({name for c in checks for name in c.runs})
    runs = {name: sum(c.runs.get(name, 0) for c in checks) for name in names}
    run_ns = {name: sum(c.run_ns.get(name, 0) for c in checks) for name in names}
    return (
        {name: runs[name] / gigabytes for name in names} if gigabytes > 0 else {},
        {name: run_ns[name] / runs[name] for name in names if runs[name]},
        sum(runs.values()) / packets if packets else float("nan"),
    )


def effective_summary(checks: Iterable[HookRuns]) -> dict[str, str]:
    """Per end, B's programs effective on its cgroup in any check (attach type:name)."""
    found: dict[str, set[str]] = {}
    for c in checks:
        for end, progs in c.effective.items():
            found.setdefault(end, set()).update(f"{kind}:{name}" for kind, name, _ in progs)
    return {end: ", ".join(sorted(names)) or "none" for end, names in found.items()}
