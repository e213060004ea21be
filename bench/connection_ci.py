"""Confidence intervals whose unit is the connection, for bench/cpu_per_gb.py.

A block (ABBA or BAAB of short windows) is paired within one running connection,
so a change common to a whole connection (where its socket's memory landed, the
batching it settled into, the machine's state at that minute) is the same in all
of its blocks. Resampling blocks as if independent then sees only the spread
within a connection and would call two runs different when they differ by
connection alone. Resampling whole connections (a cluster bootstrap) keeps that
spread in the interval; it needs many connections (a dozen or more: with K of
them the percentile interval is about sqrt((K-1)/K) too narrow, 3% at K=16), so
the bench starts a new connection every few blocks.

heterogeneity() says whether the connections of a run differ beyond what their
own blocks' spread explains (Cochran's Q against chi-square with K-1 degrees of
freedom): if they do, a block bootstrap is too narrow for that run.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

RESAMPLES = 4000


def percentile_ci(estimates: list[float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of a bootstrap's estimates."""
    ordered = sorted(estimates)
    n = len(ordered)
    return ordered[int(0.025 * n)], ordered[int(0.975 * n) - 1]


def block_bootstrap_ci(
    items: Sequence[T],
    statistic: Callable[[list[T]], float],
    resamples: int = RESAMPLES,
    seed: int = 19,
) -> tuple[float, float]:
    """95% percentile interval with items resampled as if independent (the old method)."""
    rng = random.Random(seed)
    pool = list(items)
    return percentile_ci([statistic(rng.choices(pool, k=len(pool))) for _ in range(resamples)])


def cluster_bootstrap_ci(
    clusters: Sequence[Sequence[T]],
    statistic: Callable[[list[T]], float],
    resamples: int = RESAMPLES,
    seed: int = 19,
) -> tuple[float, float]:
    """95% percentile interval with whole clusters (connections) resampled with
    replacement; the statistic sees their items pooled."""
    rng = random.Random(seed)
    groups = [list(cluster) for cluster in clusters if cluster]
    estimates = []
    for _ in range(resamples):
        pooled = [item for group in rng.choices(groups, k=len(groups)) for item in group]
        estimates.append(statistic(pooled))
    return percentile_ci(estimates)


def median_se(values: Sequence[float], resamples: int = 1000, seed: int = 19) -> float:
    """Bootstrap standard error of the median of values."""
    rng = random.Random(seed)
    pool = list(values)
    return statistics.stdev(
        statistics.median(rng.choices(pool, k=len(pool))) for _ in range(resamples)
    )


def chi2_95(df: int) -> float:
    """The 95th percentile of chi-square with df degrees of freedom (Wilson-Hilferty,
    within 1% from df=2 up; exact 3.841 at df=1)."""
    if df == 1:
        return 3.841
    z = 1.6449
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def heterogeneity(
    per_cluster: Sequence[Sequence[float]], resamples: int = 1000
) -> tuple[float, int]:
    """Cochran's Q of the clusters' medians (each weighted by 1 / its bootstrap
    variance) and its degrees of freedom. Q well above chi2_95(df) says the clusters
    differ by more than their items' spread: the items are not independent."""
    medians, weights = [], []
    for values in per_cluster:
        if len(values) < 3:
            continue
        se = median_se(values, resamples)
        if se <= 0:
            continue
        medians.append(statistics.median(values))
        weights.append(1 / se**2)
    if len(medians) < 2:
        return float("nan"), 0
    mean = sum(m * w for m, w in zip(medians, weights, strict=True)) / sum(weights)
    q = sum(w * (m - mean) ** 2 for m, w in zip(medians, weights, strict=True))
    return q, len(medians) - 1
