"""bench/hooked_end.py: with --hooked-end local, bench/cpu_per_gb.py's evidence of
which end ran the programs is runs per GB and per packet summed over checks and
the programs effective on each end's cgroup; and a process is in its cgroup before it execs,
under the pid the bench then measures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.hooked_end import (
    Ends,
    HookRuns,
    effective_summary,
    hooked_end,
    in_cgroup,
    parse_effective,
    per_gb,
)


def test_the_process_writes_its_own_pid_then_execs_under_it(tmp_path: Path) -> None:
    # A plain directory stands for the cgroup: the shell's "$$" written there must be
    # the pid of the program it became (iperf3 is measured by that pid), and written
    # before the program ran (no socket of it outside the cgroup).
    argv = in_cgroup(["sh", "-c", 'cat "$0/cgroup.procs"; echo "$$"', str(tmp_path)], tmp_path)
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    written, own = done.stdout.split()
    assert written == own


def test_no_cgroup_leaves_argv_as_it_is() -> None:
    assert in_cgroup(["iperf3", "-s"], None) == ["iperf3", "-s"]


def test_both_ends_keep_the_root_and_the_bench_cgroup() -> None:
    with hooked_end("both") as ends:
        assert ends == Ends(None, None, None)


def test_bpftool_effective_list_is_read() -> None:
    shown = json.dumps([
        {"id": 7, "attach_type": "cgroup_inet_ingress", "name": "chadt_ingress"},
        {"id": 8, "attach_type": "cgroup_sock_ops", "name": "chadt_sockops"},
    ])  # fmt: skip
    assert parse_effective(shown) == [
        ["cgroup_inet_ingress", "chadt_ingress", "7"],
        ["cgroup_sock_ops", "chadt_sockops", "8"],
    ]
    assert parse_effective("\n") == []  # bpftool prints a bare newline for a cgroup without any


def _check(moved: int, runs: dict[str, int], far: list[list[str]], packets: int = 1) -> HookRuns:
    local = [["cgroup_inet_egress", "chadt_egress", "1"]]
    ns = {name: 80 * count for name, count in runs.items()}
    return HookRuns("up", "rate", moved, packets, {"local": local, "far": far}, runs, ns)


def test_runs_per_gb_and_per_packet_over_checks_weigh_by_what_moved() -> None:
    checks = [
        _check(500_000_000, {"chadt_egress": 10_000, "chadt_ingress": 6_000}, [], 16_000),
        _check(1_500_000_000, {"chadt_egress": 30_000}, [], 44_000),
    ]
    runs, ns_a_run, per_packet = per_gb(checks)
    assert runs == {"chadt_egress": pytest.approx(20_000), "chadt_ingress": pytest.approx(3_000)}
    assert ns_a_run == {"chadt_egress": pytest.approx(80), "chadt_ingress": pytest.approx(80)}
    assert per_packet == pytest.approx(46_000 / 60_000)


def test_effective_summary_names_each_ends_programs_or_none() -> None:
    both = [["cgroup_inet_egress", "chadt_egress", "1"]]
    assert effective_summary([_check(1, {}, []), _check(1, {}, [])]) == {
        "local": "cgroup_inet_egress:chadt_egress",
        "far": "none",
    }
    assert effective_summary([_check(1, {}, []), _check(1, {}, both)])["far"] == (
        "cgroup_inet_egress:chadt_egress"
    )
