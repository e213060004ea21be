"""bench/connection_ci.py, bench/cpu_per_gb.py's intervals: when connections differ, an
interval by blocks resampled as if independent covers the true change far less often
than it says, one by whole connections resampled about as often as it says; when they
do not differ, the two agree. Simulated runs shaped like the bench's (heavy-tailed
block changes, a few blocks a connection), pure logic."""

from __future__ import annotations

import random
import statistics

from bench.connection_ci import (
    block_bootstrap_ci,
    chi2_95,
    cluster_bootstrap_ci,
    heterogeneity,
)
from bench.cpu_per_gb import MIN_CONNECTIONS, Window, by_connection, summary

TRUE_CHANGE = 0.02
RUNS = 100
RESAMPLES = 300


def simulated_run(
    rng: random.Random, connections: int, blocks: int, between: float
) -> list[list[float]]:
    """Blocks' changes by connection: the true change, plus the connection's own
    (normal, sd `between`), plus a block's noise (sd 6%, one block in eight with
    three times that, as the bench's stalls)."""
    run = []
    for _ in range(connections):
        own = rng.gauss(0.0, between)
        run.append(
            [
                TRUE_CHANGE + own + rng.gauss(0.0, 0.18 if rng.random() < 0.125 else 0.06)
                for _ in range(blocks)
            ]
        )
    return run


def coverage(between: float) -> tuple[float, float, float]:
    """How often each method's 95% interval for the median holds the true change, and
    the mean width ratio of the interval by connections to the one by blocks."""
    rng = random.Random(1919)
    old = new = 0
    ratios = []
    for run_index in range(RUNS):
        run = simulated_run(rng, 16, 6, between)
        pooled = [change for connection in run for change in connection]
        old_lo, old_hi = block_bootstrap_ci(pooled, statistics.median, RESAMPLES, run_index)
        new_lo, new_hi = cluster_bootstrap_ci(run, statistics.median, RESAMPLES, run_index)
        old += old_lo <= TRUE_CHANGE <= old_hi
        new += new_lo <= TRUE_CHANGE <= new_hi
        ratios.append((new_hi - new_lo) / (old_hi - old_lo))
    return old / RUNS, new / RUNS, statistics.mean(ratios)


def test_connections_that_differ_leave_blocks_resampled_too_narrow() -> None:
    old, new, ratio = coverage(between=0.05)
    assert old < 0.85, f"blocks resampled held the true change in {old:.0%} of runs"
    assert new >= 0.88, f"connections resampled held it in only {new:.0%} of runs"
    assert ratio > 1.3


def test_connections_alike_give_the_same_interval_either_way() -> None:
    old, new, ratio = coverage(between=0.0)
    assert old >= 0.88 and new >= 0.88
    assert 0.8 < ratio < 1.25


def test_q_flags_connections_that_differ_and_rarely_those_that_do_not() -> None:
    rng = random.Random(7)
    flagged = {
        between: sum(
            q > chi2_95(df)
            for q, df in (
                heterogeneity(simulated_run(rng, 10, 10, between), RESAMPLES) for _ in range(40)
            )
        )
        for between in (0.0, 0.05)
    }
    assert flagged[0.0] <= 6  # 5% of 40 by chance, and the medians' errors are estimates
    assert flagged[0.05] >= 30


def test_chi_square_points() -> None:
    for df, exact in ((1, 3.841), (2, 5.991), (4, 9.488), (10, 18.307), (30, 43.773)):
        assert abs(chi2_95(df) / exact - 1) < 0.01


def _windows(connections: int, blocks_each: int, named: bool) -> list[Window]:
    rng = random.Random(3)
    windows = []
    for block in range(connections * blocks_each):
        for attached in (False, True, True, False):
            cpu = 0.7e9 * (1.02 if attached else 1.0) * rng.uniform(0.9, 1.1)
            connection = block // blocks_each if named else -1
            windows.append(
                Window("up", "rate", block, attached, 0.3, 1.5e8, cpu * 0.15, 0.0, connection)
            )
    return windows


def test_windows_go_to_their_connection_or_a_chunk_before_connections_were_named() -> None:
    named = by_connection(_windows(12, 3, named=True), chunk=40)
    assert sorted(named) == list(range(12)) and {len(w) for w in named.values()} == {12}
    unnamed = by_connection(_windows(12, 3, named=False), chunk=9)  # an old run, 9 blocks a chunk
    assert sorted(unnamed) == [0, 1, 2, 3]


def test_the_report_gives_no_interval_by_connections_from_too_few() -> None:
    few = summary(_windows(MIN_CONNECTIONS - 1, 4, named=True), "rate", 1.0)
    assert "too few connections" in few and "blocks resampled" in few
    enough = summary(_windows(MIN_CONNECTIONS, 4, named=True), "rate", 1.0)
    assert "too few" not in enough and f"{MIN_CONNECTIONS} conn" in enough
