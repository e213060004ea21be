"""The benches' reads of /proc (bench/overhead_probes.py) with a process whose name is
not UTF-8, as a test's process beside a bench may have: pure logic on a fake /proc tree."""

from pathlib import Path

from bench.overhead_probes import cpu_ticks_of_all, ksoftirqd_pids


def _process(proc: Path, pid: int, comm: bytes, utime: int, stime: int) -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "comm").write_bytes(comm + b"\n")
    fields = (
        [b"S"] + [b"0"] * 10 + [str(utime).encode(), str(stime).encode(), b"0", b"0"] + [b"0"] * 5
    )
    (entry / "stat").write_bytes(
        str(pid).encode() + b" (" + comm + b") " + b" ".join(fields) + b"\n"
    )


def test_a_name_that_is_not_utf8_neither_stops_the_bench_nor_drops_its_cpu(tmp_path: Path) -> None:
    _process(tmp_path, 7, b"ksoftirqd/0", 1, 2)
    _process(tmp_path, 8, b"\xff\xfeapp", 30, 40)
    _process(tmp_path, 9, b"python3", 100, 200)
    assert ksoftirqd_pids(tmp_path) == [7]
    assert cpu_ticks_of_all({9}, tmp_path) == 1 + 2 + 30 + 40
