"""bench/busy_cpu.py: the machine's busy time from cpuidle's residency, less the
bench's own and others' CPU; and bench/cpu_per_gb.py reporting it beside the
tasks' clocks (pure logic on a made-up sysfs and saved windows)."""

import json
from dataclasses import asdict
from pathlib import Path

from bench.busy_cpu import BusyClock, BusyReading, busy_ns
from bench.cpu_per_gb import Results, Window, report_again


def _cpu(root: Path, cpu: int, times_us: list[int]) -> None:
    for state, time_us in enumerate(times_us):
        path = root / f"cpu{cpu}" / "cpuidle" / f"state{state}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "time").write_text(f"{time_us}\n")


def test_idle_residency_is_summed_over_states_per_cpu(tmp_path: Path) -> None:
    _cpu(tmp_path, 0, [5, 100])
    _cpu(tmp_path, 1, [0, 70])
    (tmp_path / "cpufreq").mkdir()  # not a CPU
    assert BusyClock(tmp_path).read().idle_us == (105, 70)


def test_busy_is_wall_less_idle_less_own_and_others() -> None:
    first = BusyReading(at_ns=0, idle_us=(1000, 2000), own_ns=0)
    last = BusyReading(at_ns=300_000_000, idle_us=(201_000, 102_000), own_ns=4_000_000)
    # CPU 0 idle 200 ms, CPU 1 100 ms: busy 100 + 200 ms; less own 4 ms and 1 tick of others
    tick_ns = 1e9 / __import__("os").sysconf("SC_CLK_TCK")
    assert busy_ns(first, last, 1) == 300_000_000 - 4_000_000 - tick_ns


def test_no_cpuidle_reads_as_not_measured(tmp_path: Path) -> None:
    reading = BusyClock(tmp_path).read()
    assert reading.idle_us == () and busy_ns(reading, reading, 0) == -1.0


def _saved(path: Path, busy: bool) -> None:
    settings = {"blocks": 24, "window": 0.3, "settle": 0.05, "chunk": 60, "per_connection": 2,
                "rate_gbit": 4.0, "directions": "up", "kinds": "rate", "max_others": 0.25,
                "compare": "none:ours"}  # fmt: skip
    results = Results("then", settings)
    for block in range(24):
        for attached in (False, True, True, False):
            cpu = 1e9 * (1.01 if attached else 1.0)
            busy_cpu = 1.1e9 * (1.03 if attached else 1.0) if busy else -1.0
            results.windows.append(
                Window("up", "rate", block, attached, 0.3, 1e9, cpu, 0.0, block // 2, busy_cpu)
            )
    path.write_text(json.dumps(asdict(results)))


def test_the_report_gives_the_busy_measure_beside_the_clocks(tmp_path: Path) -> None:
    _saved(tmp_path / "new.json", busy=True)
    report = report_again(str(tmp_path / "new.json"))
    assert "CPU per GB    24/24   12 conn  median +1.00%" in report
    assert "busy/GB       24/24   12 conn  median +3.00%" in report
    assert "1.000 s of CPU per GB, the machine's busy 1.100" in report


def test_runs_saved_before_report_without_it_and_pool_with_new_ones(tmp_path: Path) -> None:
    _saved(tmp_path / "old.json", busy=False)
    old = json.loads((tmp_path / "old.json").read_text())
    for window in old["windows"]:
        del window["busy_ns"]  # as saved before busy_ns was recorded
    (tmp_path / "old.json").write_text(json.dumps(old))
    _saved(tmp_path / "new.json", busy=True)
    assert "busy" not in report_again(str(tmp_path / "old.json"))
    pooled = report_again(str(tmp_path / "old.json"), str(tmp_path / "new.json"))
    assert "CPU per GB    48/48   24 conn  median +1.00%" in pooled
    assert "busy/GB       24/48   12 conn  median +3.00%" in pooled  # the new run's blocks only


def test_others_ticks_that_fell_leave_the_window_and_its_block_out(tmp_path: Path) -> None:
    first = BusyReading(at_ns=0, idle_us=(0, 0), own_ns=0)
    last = BusyReading(at_ns=300_000_000, idle_us=(100_000, 100_000), own_ns=0)
    assert busy_ns(first, last, -3000) == -1.0  # a process exited: its lifetime left the sum
    _saved(tmp_path / "new.json", busy=True)
    saved = json.loads((tmp_path / "new.json").read_text())
    saved["windows"][5]["busy_ns"] = -1.0  # block 1
    (tmp_path / "new.json").write_text(json.dumps(saved))
    assert "busy/GB       23/24   12 conn" in report_again(str(tmp_path / "new.json"))


def test_a_block_whose_stream_ended_in_a_window_is_left_out(tmp_path: Path) -> None:
    """0.15 s windows outran the stream's -t: the last block of each connection moved
    nothing in its last windows, and cpu / max(1, bytes) made them outliers, not gaps."""
    _saved(tmp_path / "run.json", busy=True)
    saved = json.loads((tmp_path / "run.json").read_text())
    for window in saved["windows"][22:24]:  # block 5's last two windows: the stream ended
        window["moved_bytes"] = 0
        window["cpu_ns"] = 1e6
    (tmp_path / "run.json").write_text(json.dumps(saved))
    report = report_again(str(tmp_path / "run.json"))
    assert "CPU per GB    23/24   12 conn  median +1.00%" in report
    assert "totals +1.00%" in report
