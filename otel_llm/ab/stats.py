"""Statistics for the A/B report in pure Python: percentiles, the Mann-Whitney U test, Holm's correction.

Mann-Whitney U compares two samples of trace durations without assuming a distribution (latencies are
skewed). The p-value uses the normal approximation with tie and continuity corrections; it is reported only
when each sample has at least ``MIN_SAMPLES`` values, below which the approximation is not trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 8


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` in input order, and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for index in order[start : end + 1]:
            ranks[index] = average
        ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


@dataclass(frozen=True)
class MannWhitneyResult:
    """U of the first sample, the z score, the two-sided p-value (None with too few samples), and the
    probability that a value of the first sample exceeds one of the second (0.5 = no difference)."""

    u: float
    z: float | None
    p_value: float | None
    probability_greater: float


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U test of ``first`` against ``second``."""
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples must be non-empty")
    ranks, ties = _ranks(list(first) + list(second))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    probability_greater = u1 / (n1 * n2)
    if min(n1, n2) < MIN_SAMPLES:
        return MannWhitneyResult(u1, None, None, probability_greater)
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1))
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    mean = n1 * n2 / 2
    if variance <= 0:  # every value equal: no evidence of a difference
        return MannWhitneyResult(u1, 0.0, 1.0, probability_greater)
    deviation = u1 - mean
    corrected = max(abs(deviation) - 0.5, 0.0)
    z = math.copysign(corrected / math.sqrt(variance), deviation)
    return MannWhitneyResult(u1, z, min(1.0, math.erfc(abs(z) / math.sqrt(2))), probability_greater)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of p-values (None, an untested comparison, stays None and does not count).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) * p_(j))``; calling the
    comparisons with an adjusted p below alpha significant keeps the family-wise error rate at alpha.
    """
    tested = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
