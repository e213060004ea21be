"""Where accounting's per-packet time goes, symbol by symbol (issue 19).

    sudo .venv/bin/python -m bench.hook_profile [--rounds 4] [--seconds 4] [--direction up] [--keep DIR]

bench/overhead.py's iperf3 stream at a fixed rate (4 Gbit/s) on one connection,
switched between no program on the cgroup root (none) and the datapath from
bpf/, nothing limited (ours), none/ours/ours/none per round. In each window
perf samples every CPU (cpu-clock: this VM has no PMU, so neither cycles nor
`bpftool prog profile`); a symbol's samples are turned into ns of CPU per GB
moved, and the report lists the symbols whose time per GB grew most in ours
over none: the programs themselves (bpf_prog_*), the helpers they call, and
the kernel's hook around them. With --keep, the windows' perf.data files stay
(perf annotate on a bpf_prog_* symbol needs its program loaded, or the
program's info as perf recorded it).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chadthrottle.helper.kernel import bpf_syscalls

from bench.overhead import Iperf, machine_lock_or_not, switchable
from tests.support.netns import netns_pair

FREQUENCY_HZ = 4999
BPF_OBJ_GET_INFO_BY_FD = 15


def uptime() -> str:
    with open("/proc/loadavg") as loadavg:
        return time.strftime("%H:%M:%S UTC ", time.gmtime()) + " ".join(loadavg.read().split()[:3])


def record(path: Path, seconds: float) -> None:
    subprocess.run(
        [
            "perf",
            "record",
            "-a",
            "-g",
            "-F",
            str(FREQUENCY_HZ),
            "-o",
            str(path),
            "--",
            "sleep",
            str(seconds),
        ],
        capture_output=True,
        check=True,
    )


@dataclasses.dataclass
class Profile:
    """Samples by the symbol they fell in (self), by a symbol anywhere on their stack
    (inclusive: INCLUSIVE only, and each hook by its caller), and in our programs by address."""

    self_: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    inclusive: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    addresses: collections.Counter[tuple[str, int]] = dataclasses.field(
        default_factory=collections.Counter
    )

    def add(self, stack: list[tuple[int, str]]) -> None:
        if not stack or "idle" in stack[0][1] or "safe_halt" in stack[0][1]:
            return
        ip, leaf = stack[0]
        self.self_[leaf] += 1
        if leaf.startswith("bpf_prog_"):
            self.addresses[(leaf, ip)] += 1
        names = [name for _, name in stack]
        for name in {*names} & INCLUSIVE:
            self.inclusive[name] += 1
        for index, name in enumerate(names):
            if name == "__cgroup_bpf_run_filter_skb" and index + 1 < len(names):
                self.inclusive[f"__cgroup_bpf_run_filter_skb<-{names[index + 1]}"] += 1
                break
        for name in names:
            if name.startswith("bpf_prog_"):
                self.inclusive[name] += 1  # the program and the helpers it calls


# symbols whose samples are also counted with everything under them
INCLUSIVE = frozenset(
    {"__cgroup_bpf_run_filter_skb", "bpf_sk_storage_get", "__bpf_prog_run_save_cb"}
)


def profile_of(path: Path, into: Profile) -> None:
    script = subprocess.run(
        ["perf", "script", "-i", str(path), "-F", "ip,sym"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stack: list[tuple[int, str]] = []
    for line in [*script.splitlines(), ""]:
        fields = line.split()
        if not fields:
            into.add(stack)
            stack = []
            continue
        with contextlib.suppress(ValueError):
            stack.append((int(fields[0], 16), fields[1] if len(fields) > 1 else "?"))


def jited_image(prog_id: int) -> bytes:
    """A loaded program's JIT image (struct bpf_prog_info: jited_prog_len at 16, jited_prog_insns at 24)."""
    prog_fd = bpf_syscalls.open_program(prog_id)
    try:
        info = ctypes.create_string_buffer(256)
        attr = bpf_syscalls.attr_buffer()
        ctypes.c_uint32.from_buffer(attr, 0).value = prog_fd
        ctypes.c_uint32.from_buffer(attr, 4).value = len(info)
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
        bpf_syscalls.command(BPF_OBJ_GET_INFO_BY_FD, attr)
        length = ctypes.c_uint32.from_buffer(info, 16).value
        image = ctypes.create_string_buffer(length)
        ctypes.memset(info, 0, len(info))
        ctypes.c_uint32.from_buffer(info, 16).value = length
        ctypes.c_uint64.from_buffer(info, 24).value = ctypes.addressof(image)
        bpf_syscalls.command(BPF_OBJ_GET_INFO_BY_FD, attr)
        return image.raw
    finally:
        os.close(prog_fd)


def run_stats(datapath: Any, iperf: Iperf, seconds: float) -> list[str]:
    """Runs per GB and ns a run of each attached program over one more window of ours,
    by the kernel's run-time statistics (on only for this window: they add two clock
    reads a run)."""
    stats_fd = bpf_syscalls.enable_run_time_stats()
    try:
        programs = [(bpf_syscalls.program_name(fd), fd) for fd, _ in datapath._attached]
        before = {name: bpf_syscalls.program_run_stats(fd) for name, fd in programs}
        first, skbs_before = iperf.sample(), veth_skbs(iperf)
        time.sleep(seconds)
        last, skbs_after = iperf.sample(), veth_skbs(iperf)
        after = {name: bpf_syscalls.program_run_stats(fd) for name, fd in programs}
    finally:
        os.close(stats_fd)
    gb = (last.moved_bytes - first.moved_bytes) / 1e9
    if gb <= 0:
        return ["  the stream had ended: no statistics"]
    rx, tx = (after - before for before, after in zip(skbs_before, skbs_after, strict=True))
    lines = [f"  the server's veth: {rx / gb:10.0f} skbs received and {tx / gb:10.0f} sent per GB"]
    for name, _ in programs:
        run_ns, runs = (b - a for a, b in zip(before[name], after[name], strict=True))
        lines.append(f"  {name:16} {runs / gb:10.0f} runs per GB, {run_ns / max(1, runs):6.1f} ns a run "
                     f"(statistics included), {run_ns / gb / 1e6:6.2f} ms per GB")  # fmt: skip
    return lines


def veth_skbs(iperf: Iperf) -> tuple[int, int]:
    """(received, sent) packets of the server's veth: a veth counts each skb once, a GSO
    or GRO super-packet as one, so these are what the hooks run on."""
    with open(f"/proc/{iperf.server.pid}/net/dev") as dev:
        for line in dev:
            name, _, counters = line.partition(":")
            if name.strip() == iperf.pair.peer_if:
                values = counters.split()
                return int(values[1]), int(values[9])
    return 0, 0


def dump_programs(into: Path) -> None:
    """Each loaded chadt_ program's JIT image, disassembled at its kernel address (this
    bpftool has no libbfd: the raw image goes through objdump), and its bytecode."""
    kallsyms = {}
    for line in Path("/proc/kallsyms").read_text().splitlines():
        address, _, name = line.split()[:3]
        if name.startswith("bpf_prog_") and "_chadt_" in name:
            kallsyms[name.split("_chadt_")[1]] = (int(address, 16), name)
    shown = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    for line in shown.splitlines():
        if " name chadt_" not in line:
            continue
        prog_id, name = line.split(":")[0], line.split(" name ")[1].split()[0]
        image = into / f"{name}.jited.bin"
        try:
            image.write_bytes(jited_image(int(prog_id)))
        except OSError:  # unloaded meanwhile (another datapath's)
            continue
        xlated = subprocess.run(
            ["bpftool", "prog", "dump", "xlated", "id", prog_id], capture_output=True, text=True
        )
        (into / f"{name}.xlated.txt").write_text(xlated.stdout)
        address, symbol = kallsyms.get(name.removeprefix("chadt_"), (0, name))
        asm = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={address:#x}",
                              str(image)], capture_output=True, text=True)  # fmt: skip
        (into / f"{symbol}.asm").write_text(asm.stdout)


def annotate(into: Path, addresses: collections.Counter[tuple[str, int]]) -> None:
    """Each program's disassembly with its samples at the left, as perf annotate would."""
    for asm in into.glob("bpf_prog_*.asm"):
        symbol = asm.stem
        counts = {ip: n for (name, ip), n in addresses.items() if name == symbol}
        total = max(1, sum(counts.values()))
        lines = []
        for line in asm.read_text().splitlines():
            head = line.split(":")[0].strip()
            n = (
                counts.get(int(head, 16), 0)
                if head and all(c in "0123456789abcdef" for c in head)
                else 0
            )
            lines.append(f"{n:6d} {n / total * 100:5.1f}% {line}" if n else f"{'':13} {line}")
        (into / f"{symbol}.annotated").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hook_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="per window")
    parser.add_argument("--rate-gbit", type=float, default=4.0)
    parser.add_argument("--direction", default="up", choices=("up", "down"))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", help="keep the perf.data files here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # clean up on kill
    keep = (
        Path(args.keep) if args.keep else Path(f"/tmp/chadthrottle-hook-profile-{time.time_ns()}")
    )
    keep.mkdir(parents=True, exist_ok=True)
    ns_per_sample = 1e9 / FREQUENCY_HZ
    profiles = {False: Profile(), True: Profile()}
    moved = {False: 0, True: 0}
    print(f"start {uptime()}", file=sys.stderr)
    with machine_lock_or_not(60.0) as locked:
        if not locked:
            raise SystemExit("another datapath holds the machine: it would see every packet")
        with netns_pair() as pair:
            iperf = Iperf(pair, None)
            try:
                seconds = (
                    args.rounds * 4 * (2 * args.seconds + 5) + args.seconds + 20
                )  # perf script takes its time
                with (
                    switchable("accounting", pair, True) as switch,
                    iperf.stream(args.direction, seconds, "rate", args.rate_gbit * 1e9 / 8),
                ):
                    switch.datapath.adopt_open_sockets(iperf.pids())
                    for round_ in range(args.rounds):
                        for attached in (False, True, True, False):
                            switch.set(attached)
                            time.sleep(0.5)
                            path = (
                                keep
                                / f"r{round_}-{'ours' if attached else 'none'}-{time.time_ns()}.data"
                            )
                            first = iperf.sample()
                            record(path, args.seconds)
                            last = iperf.sample()
                            moved[attached] += last.moved_bytes - first.moved_bytes
                            profile_of(path, profiles[attached])
                            if not args.keep:
                                path.unlink()
                    dump_programs(keep)
                    switch.set(True)
                    runs = run_stats(switch.datapath, iperf, args.seconds)
                    switch.set(False)
            finally:
                iperf.close()
    print(f"end {uptime()}", file=sys.stderr)

    def ms_per_gb(counts: collections.Counter[Any], attached: bool) -> dict[Any, float]:
        return {s: n * ns_per_sample / (moved[attached] / 1e9) / 1e6 for s, n in counts.items()}

    per_gb = {a: ms_per_gb(profiles[a].self_, a) for a in profiles}
    total = {a: sum(per_gb[a].values()) for a in per_gb}
    print(f"{args.direction} at {args.rate_gbit} Gbit/s, {args.rounds} rounds of none/ours/ours/none, "
          f"{args.seconds} s windows, perf cpu-clock at {FREQUENCY_HZ} Hz on every CPU")  # fmt: skip
    print(f"moved: none {moved[False] / 1e9:.2f} GB, ours {moved[True] / 1e9:.2f} GB")
    print(f"busy CPU per GB: none {total[False]:.1f} ms, ours {total[True]:.1f} ms "
          f"({(total[True] / total[False] - 1) * 100:+.2f}%)")  # fmt: skip
    deltas = sorted(
        (
            (per_gb[True].get(s, 0.0) - per_gb[False].get(s, 0.0), s)
            for s in {*per_gb[False], *per_gb[True]}
        ),
        reverse=True,
    )
    print(f"{'symbol':48} {'none ms/GB':>11} {'ours ms/GB':>11} {'ours-none':>10} {'% of none':>9}")
    for delta, symbol in [*deltas[: args.top], (0.0, "..."), *deltas[-8:]]:
        if symbol == "...":
            print("...")
            continue
        a, b = per_gb[False].get(symbol, 0.0), per_gb[True].get(symbol, 0.0)
        print(
            f"{symbol[:48]:48} {a:11.2f} {b:11.2f} {delta:+10.2f} {delta / total[False] * 100:+8.2f}%"
        )
    inclusive = {a: ms_per_gb(profiles[a].inclusive, a) for a in profiles}
    print("inclusive (the symbol and everything it calls), ms per GB in ours:")
    for symbol, value in sorted(inclusive[True].items(), key=lambda item: -item[1]):
        print(f"  {symbol[:70]:70} {value:8.2f} {value / total[False] * 100:+6.2f}% of none")
    print("the kernel's run-time statistics, one more window of ours:")
    print("\n".join(runs))
    annotate(keep, profiles[True].addresses)
    print(f"perf data, dumps and annotated programs: {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
