"""Statistics for the A/B report, from libraries made for them: SciPy and statsmodels (the ``ab`` extra).

- Percentiles: ``numpy.percentile`` (linear interpolation between ranks).
- Is one arm slower? ``scipy.stats.mannwhitneyu``, two-sided, ``method="auto"``: the exact distribution of
  U for small samples without ties, the normal approximation with tie and continuity corrections otherwise.
  It assumes no distribution (latencies are skewed). A p-value is given from ``MIN_SAMPLES`` requests per
  arm: with fewer in one arm the exact test cannot go under 0.05 (3 against 4: p >= 2/35 = 0.057).
- How much slower? ``scipy.stats.bootstrap`` (percentile method, 9999 resamples, a fixed seed so a report is
  reproducible) gives a confidence interval for the difference of the medians, in seconds and relative to
  the baseline's median.
- Several arms: ``statsmodels.stats.multitest.multipletests(method="holm")``. Holm keeps the chance of any
  false alarm among the comparisons at alpha (family-wise error rate), the guarantee the report has always
  given; SciPy's ``false_discovery_control`` (Benjamini-Hochberg) bounds only the expected share of false
  alarms, a weaker promise for a report that tells someone to switch providers.

Imported by ``otel-llm ab`` only, never by an instrumented service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy
from scipy import stats

MIN_SAMPLES = 4
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 20240607


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    if not len(values):
        return None
    return float(numpy.percentile(values, q))


@dataclass(frozen=True)
class MannWhitneyResult:
    """U of the first sample, the two-sided p-value (None with too few samples), and the probability that a
    value of the first sample exceeds one of the second (U / (n1 n2); 0.5 = no difference)."""

    u: float
    p_value: float | None
    probability_greater: float


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U test of ``first`` against ``second`` (``scipy.stats.mannwhitneyu``)."""
    if not len(first) or not len(second):
        raise ValueError("both samples must be non-empty")
    result = stats.mannwhitneyu(first, second, alternative="two-sided", method="auto")
    u = float(result.statistic)
    p_value = float(result.pvalue) if min(len(first), len(second)) >= MIN_SAMPLES else None
    return MannWhitneyResult(u, p_value, u / (len(first) * len(second)))


def _median_difference(arm, baseline, axis=-1):
    return numpy.median(arm, axis=axis) - numpy.median(baseline, axis=axis)


def _median_change(arm, baseline, axis=-1):
    return numpy.median(arm, axis=axis) / numpy.median(baseline, axis=axis) - 1


@dataclass(frozen=True)
class Difference:
    """Median of ``arm`` minus median of ``baseline`` (seconds), and relative to the baseline's median (a
    fraction: 0.5 = 50 % slower), each with its bootstrap confidence interval (low, high)."""

    seconds: float
    seconds_interval: tuple[float, float]
    relative: float | None
    relative_interval: tuple[float, float] | None


def _interval(statistic, samples, confidence: float) -> tuple[float, float]:
    result = stats.bootstrap(
        samples,
        statistic,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=numpy.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def median_difference(arm: Sequence[float], baseline: Sequence[float], confidence: float) -> Difference:
    """The difference of the medians with ``confidence`` (e.g. 0.95) bootstrap intervals; the relative one is
    None when a resample's baseline median can be 0 (durations of 0)."""
    if min(len(arm), len(baseline)) < 2:
        raise ValueError("both samples need at least 2 values for a bootstrap interval")
    samples = (numpy.asarray(arm, dtype=float), numpy.asarray(baseline, dtype=float))
    seconds = float(_median_difference(*samples))
    seconds_interval = _interval(_median_difference, samples, confidence)
    if numpy.min(samples[1]) <= 0:
        return Difference(seconds, seconds_interval, None, None)
    relative = float(_median_change(*samples))
    return Difference(seconds, seconds_interval, relative, _interval(_median_change, samples, confidence))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (statsmodels); None, an untested comparison, stays None and does not count."""
    # Imported here: only reports with three or more arms adjust, and statsmodels takes a second to import.
    from statsmodels.stats.multitest import multipletests

    tested = [(index, p) for index, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if tested:
        corrected = multipletests([p for _, p in tested], method="holm")[1]
        for (index, _), p in zip(tested, corrected, strict=True):
            adjusted[index] = float(p)
    return adjusted
