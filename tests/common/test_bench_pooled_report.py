"""bench/cpu_per_gb.py --report with several saved runs: pooled with each run's
connections kept apart (the intervals' unit), not merged by their numbers."""

import json
from dataclasses import asdict
from pathlib import Path

from bench.cpu_per_gb import Results, Window, report_again


def _run(path: Path, change: float, connections: int) -> None:
    """A saved run of `connections` connections of 2 blocks, each B dearer by `change`."""
    settings = {"blocks": 2 * connections, "window": 0.3, "settle": 0.05, "chunk": 60,
                "per_connection": 2, "rate_gbit": 4.0, "directions": "up", "kinds": "rate",
                "max_others": 0.25, "compare": "none:ours"}  # fmt: skip
    results = Results("then", settings)
    for block in range(2 * connections):
        for attached in (False, True, True, False):
            cpu = 1e9 * (1 + change if attached else 1.0) * (1 + 0.01 * (block % 3))
            results.windows.append(
                Window("up", "rate", block, attached, 0.3, 1e9, cpu, 0.0, block // 2)
            )
    path.write_text(json.dumps(asdict(results)))


def test_two_runs_pool_into_all_their_connections(tmp_path: Path) -> None:
    _run(tmp_path / "a.json", 0.01, 6)
    _run(tmp_path / "b.json", 0.03, 6)
    alone = report_again(str(tmp_path / "a.json"))
    pooled = report_again(str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert "6 conn" in alone and "too few connections" in alone
    assert "12 conn  median +2.00%" in pooled  # 12 blocks at +1%, 12 at +3%
    assert "24/24" in pooled
