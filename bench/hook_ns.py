"""Nanoseconds per packet of the cgroup-BPF hook and of our programs, by the
CPU time of one thread (precise where bench/hook_split.py's iperf3 windows
are not on a shared machine).

    sudo .venv/bin/python -m bench.hook_ns [--blocks 30] [--batch 20000]

One thread sends a datagram over loopback and reads it back (udp: 64 bytes;
tcp: 64 KiB through one connection), so each operation runs the egress and
the ingress hook in that thread's own context (sending, and the softirq that
delivers on the loopback device; this kernel has no IRQ time accounting, so
the softirq's time is the thread's). Batches of --batch operations are timed
by CLOCK_THREAD_CPUTIME_ID, which counts no time another process ran, in the
states of bench/hook_split.py (none: no program on the skb hooks; hook: an
empty program on both; full: the datapath from bpf/, nothing limited),
ordered none hook full full hook none per block. The report is, per block,
the difference in ns per operation (hook - none, full - hook, full - none),
median [IQR] over blocks; the sockets are tagged with their owner as any
application's are.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel import datapath as datapath_module
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.ownership import RUN_DIR

from bench.hook_split import ORDER, SPLITS, STATES, EmptyHooks, uptime
from bench.overhead import CACHE_DIR, machine_lock_or_not
from bench.overhead_probes import chadt_programs, run_stats
from bench.suspendable import SuspendableDatapath

UDP_PAYLOAD = 64
TCP_CHUNK = 64 * 1024


class Loop:
    """A pair of loopback sockets and one operation: send, then read it back."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "udp":
            self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.rx.bind(("127.0.0.1", 0))
            self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.tx.connect(self.rx.getsockname())
            self.payload = b"x" * UDP_PAYLOAD
        else:
            listener = socket.create_server(("127.0.0.1", 0))
            self.tx = socket.create_connection(listener.getsockname())
            self.rx, _ = listener.accept()
            listener.close()
            self.payload = b"x" * TCP_CHUNK
        self.buffer = bytearray(len(self.payload))

    def run(self, count: int) -> int:
        """CPU ns of this thread for count operations."""
        send, recv_into, payload, view = (
            self.tx.send,
            self.rx.recv_into,
            self.payload,
            memoryview(self.buffer),
        )
        size = len(payload)
        start = time.thread_time_ns()
        for _ in range(count):
            send(payload)
            got = 0
            while got < size:
                got += recv_into(view[got:])
        return time.thread_time_ns() - start

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def measure(
    kind: str, args: argparse.Namespace, datapath: SuspendableDatapath, hooks: EmptyHooks
) -> dict[str, list[float]]:
    loop = Loop(kind)
    batch = args.batch if kind == "udp" else max(1, args.batch // 10)
    try:
        datapath.adopt_open_sockets([os.getpid()])
        per_block: list[dict[str, list[float]]] = []
        for _block in range(args.blocks):
            ns: dict[str, list[float]] = {state: [] for state in STATES}
            for state in ORDER:
                set_state(state, datapath, hooks)
                loop.run(batch // 10)  # warm
                ns[state].append(loop.run(batch) / batch)
            per_block.append(ns)
        stats = run_time_stats(loop, batch * 5, datapath, hooks, args.ours)
    finally:
        set_state("none", datapath, hooks)
        loop.close()
    splits: dict[str, list[float]] = {name: [] for name, _b, _a in SPLITS}
    splits.update({f"ns/op {state}": [] for state in STATES})
    for ns in per_block:
        mean = {state: statistics.mean(values) for state, values in ns.items()}
        for name, b, a in SPLITS:
            splits[name].append(mean[b] - mean[a])
        for state in STATES:
            splits[f"ns/op {state}"].append(mean[state])
    splits.update({f"stats {name}": [value] * 4 for name, value in stats.items()})
    return splits


def run_time_stats(
    loop: Loop, count: int, datapath: SuspendableDatapath, hooks: EmptyHooks, ours: dict[int, str]
) -> dict[str, float]:
    """ns per run of the empty programs (hook) and of ours (full) by the kernel's
    run-time statistics over count operations: the bodies alone, plus the
    statistics' own clock reads (the empty programs show how much)."""
    found: dict[str, float] = {}
    for state, programs in (("hook", hooks.ids()), ("full", ours)):
        set_state(state, datapath, hooks)
        stats_fd = bpf_syscalls.enable_run_time_stats()
        try:
            before = run_stats(programs)
            loop.run(count)
            after = run_stats(programs)
        finally:
            os.close(stats_fd)
        for prog_id, name in programs.items():
            if prog_id not in before or prog_id not in after:
                continue  # not ours after all: a datapath that opened beside ours and closed
            runs = after[prog_id][1] - before[prog_id][1]
            if runs:
                found[name] = (after[prog_id][0] - before[prog_id][0]) / runs
    return found


_attached = {"full": True}


def set_state(state: str, datapath: SuspendableDatapath, hooks: EmptyHooks) -> None:
    if state != "full" and _attached["full"]:
        datapath.suspend()
        _attached["full"] = False
    hooks.set(state == "hook")
    if state == "full" and not _attached["full"]:
        datapath.resume()
        _attached["full"] = True


def _row(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):8.1f}  [{q[0]:7.1f}, {q[2]:7.1f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hook_ns", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument(
        "--batch", type=int, default=20000, help="operations per window (tcp: a tenth)"
    )
    parser.add_argument("--kinds", default="udp,tcp")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU the thread runs on")
    parser.add_argument(
        "--bpf", type=Path, help="build full from this copy of bpf/ (its own cache) instead of bpf/"
    )
    parser.add_argument(
        "--lock-wait", type=float, default=900.0, help="seconds to wait for no other datapath"
    )
    parser.add_argument(
        "--beside-others",
        action="store_true",
        help="if the lock does not come, measure beside other datapaths (programs only)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (BPF)")
    if not set(args.kinds.split(",")) <= {"udp", "tcp"}:
        parser.error("kinds are udp, tcp")
    os.sched_setaffinity(0, {args.cpu})
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    cache_dir = CACHE_DIR
    if args.bpf:  # as bench/program_variants.py does
        os.environ.setdefault("BCC_KERNEL_SOURCE", str(kernel_source_dir(CACHE_DIR)))
        cache_dir = Path(tempfile.mkdtemp(prefix="chadthrottle-hook-ns-"))
        cache_dir.chmod(0o755)
        source = args.bpf.resolve()
        datapath_module.bpf_source_dir = lambda: source
    print(
        f"bench/hook_ns.py, {uptime()}; {args.blocks} blocks of {' '.join(ORDER)}; full from {args.bpf or 'bpf/'}"
    )
    with machine_lock_or_not(args.lock_wait) as locked:
        foreign = len(list(RUN_DIR.glob("datapath-*.ids")))
        if not locked and not args.beside_others:
            raise SystemExit("another datapath holds the machine: it would see every packet too")
        if (
            not locked
        ):  # their programs run in every state: hook is then one more program's dispatch
            print(f"WITHOUT the machine lock: {foreign} other datapaths attached; 'hook' is then the cost of "
                  "one more program on hooks already on, not of the hook itself")  # fmt: skip
        datapath = SuspendableDatapath(cache_dir=cache_dir)
        before_open = chadt_programs()
        datapath.open(machine_lock_held=locked)
        args.ours = {
            i: n
            for i, n in chadt_programs().items()
            if i not in before_open and n in ("chadt_egress", "chadt_ingress")
        }
        hooks = EmptyHooks()
        _attached["full"] = True
        try:
            for kind in args.kinds.split(","):
                splits = measure(kind, args, datapath, hooks)
                unit = (
                    f"{UDP_PAYLOAD}-byte datagram"
                    if kind == "udp"
                    else f"{TCP_CHUNK // 1024} KiB sent and read"
                )
                print(f"\n{kind}: ns per operation ({unit}; one egress and one ingress run each, tcp plus its ACKs), "
                      f"median [IQR] over {args.blocks} blocks, {uptime()}")  # fmt: skip
                for name, values in splits.items():
                    print(f"  {name:<11} {_row(values)}")
        finally:
            hooks.close()
            datapath.close()
            if args.bpf:
                shutil.rmtree(cache_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
