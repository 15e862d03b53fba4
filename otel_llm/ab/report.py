"""The per-arm comparison: requests, error rate, latency percentiles, TTFT, tokens, and significance.

The fastest arm (lowest median trace duration) is the baseline; every other arm is compared with it by a
two-sided Mann-Whitney U test on trace durations, and the difference of the medians is given with a
bootstrap confidence interval at level ``1 - alpha``, in seconds and relative to the baseline (``stats``).
With two or more comparisons (three or more arms) the p-values are adjusted by Holm's step-down method
(``stats.holm``), so the chance of calling any arm slower by accident stays at ``alpha`` however many arms
there are. An arm is called slower *significantly* when its (adjusted) p-value is below ``alpha``; with too
few samples the p-value is None and nothing is called significant.

Time to first token comes from the LLM spans of the arm's traces (``gen_ai.response.time_to_first_chunk``),
else from Prometheus for an arm none of whose spans carries it (``ttft_source`` says which).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from otel_llm.ab.sources import TraceSample
from otel_llm.ab.stats import MIN_SAMPLES, Difference, holm, mann_whitney_u, median_difference, percentile

DEFAULT_ALPHA = 0.05
LATENCY_PERCENTILES = (50, 95, 99)
TTFT_PERCENTILES = (50, 95)
HOLM = "holm"
TTFT_FROM_SPANS = "spans"
TTFT_FROM_PROMETHEUS = "prometheus"


@dataclass(frozen=True)
class ArmStats:
    """One arm's numbers; durations in seconds, None where there is no data."""

    arm: str
    requests: int
    errors: int
    error_rate: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_source: str | None  # TTFT_FROM_SPANS, TTFT_FROM_PROMETHEUS, or None (no data)
    tokens_per_request: float | None


@dataclass(frozen=True)
class Comparison:
    """An arm against the baseline (the fastest arm)."""

    baseline: str
    arm: str
    median_ratio: float | None  # arm median / baseline median
    median_difference_s: float | None  # arm median - baseline median
    median_difference_ci_s: tuple[float, float] | None  # its bootstrap interval at 1 - alpha
    median_change: float | None  # median_difference_s / baseline median (0.5 = 50 % slower)
    median_change_ci: tuple[float, float] | None
    p_value: float | None  # the test's own p-value
    p_adjusted: float | None  # after the multiple-comparison correction (= p_value for one comparison)
    probability_slower: float  # P(a request of ``arm`` takes longer than one of ``baseline``)
    significant: bool  # p_adjusted < alpha
    verdict: str


@dataclass(frozen=True)
class Report:
    experiment: str | None
    alpha: float
    arms: list[ArmStats]
    comparisons: list[Comparison] = field(default_factory=list)
    slower_arm: str | None = None
    significant: bool = False
    correction: str | None = None  # "holm" with more than one comparison

    def to_dict(self) -> dict:
        return asdict(self)


def arm_stats(arm: str, samples: list[TraceSample], ttft: Mapping[int, Mapping[str, float]]) -> ArmStats:
    """One arm's numbers; TTFT from its spans, else ``ttft`` (percentile -> seconds per arm, Prometheus)."""
    durations = [s.duration_s for s in samples]
    errors = sum(s.error for s in samples)
    tokens = [s.tokens for s in samples if s.tokens is not None]
    p50, p95, p99 = (percentile(durations, q) for q in LATENCY_PERCENTILES)
    first_chunks = [seconds for s in samples for seconds in s.ttft_s]
    if first_chunks:
        ttft_p50, ttft_p95 = (percentile(first_chunks, q) for q in TTFT_PERCENTILES)
        source = TTFT_FROM_SPANS
    else:
        ttft_p50, ttft_p95 = (ttft.get(q, {}).get(arm) for q in TTFT_PERCENTILES)
        source = TTFT_FROM_PROMETHEUS if ttft_p50 is not None or ttft_p95 is not None else None
    return ArmStats(
        arm=arm,
        requests=len(samples),
        errors=errors,
        error_rate=errors / len(samples) if samples else 0.0,
        p50_s=p50,
        p95_s=p95,
        p99_s=p99,
        ttft_p50_s=ttft_p50,
        ttft_p95_s=ttft_p95,
        ttft_source=source,
        tokens_per_request=sum(tokens) / len(tokens) if tokens else None,
    )


def _signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+.1f}"


def _signed_pct(fraction: float) -> str:
    return f"{fraction * 100:+.1f}"


def describe_difference(difference: Difference, confidence: float) -> str:
    """``median +270.0 ms (95% CI +250.1 to +290.3 ms), +90.0% (95% CI +80.2 to +99.9%)``."""
    level = f"{confidence * 100:g}% CI"
    low, high = difference.seconds_interval
    text = f"median {_signed_ms(difference.seconds)} ms ({level} {_signed_ms(low)} to {_signed_ms(high)} ms)"
    if difference.relative is not None and difference.relative_interval is not None:
        low, high = difference.relative_interval
        text += f", {_signed_pct(difference.relative)}% ({level} {_signed_pct(low)} to {_signed_pct(high)}%)"
    return text


def _verdict(
    baseline: str,
    arm: str,
    p: float | None,
    alpha: float,
    significant: bool,
    adjusted: bool,
    difference: Difference | None,
) -> str:
    if p is None:
        return f"too few requests to judge (need {MIN_SAMPLES} per arm)"
    p_text = f"{'Holm-adjusted ' if adjusted else ''}p={p:.3g}"
    size = f": {describe_difference(difference, 1 - alpha)}" if difference is not None else ""
    if significant:
        return f"{arm} is slower than {baseline}{size}; {p_text} < {alpha}"
    return f"no significant difference between {arm} and {baseline}{size}; {p_text} >= {alpha}"


def compare(
    baseline: str, arms: list[str], by_arm: Mapping[str, list[float]], alpha: float
) -> list[Comparison]:
    """Each of ``arms`` against ``baseline``; p-values Holm-adjusted when there is more than one."""
    base = by_arm[baseline]
    results = [mann_whitney_u(by_arm[arm], base) for arm in arms]
    adjust = len(arms) > 1
    adjusted = holm([r.p_value for r in results]) if adjust else [r.p_value for r in results]
    base_median = percentile(base, 50)
    comparisons = []
    for arm, result, p_adjusted in zip(arms, results, adjusted, strict=True):
        other_median = percentile(by_arm[arm], 50)
        ratio = other_median / base_median if base_median and other_median is not None else None
        difference = median_difference(by_arm[arm], base, 1 - alpha) if result.p_value is not None else None
        significant = p_adjusted is not None and p_adjusted < alpha
        comparisons.append(
            Comparison(
                baseline,
                arm,
                ratio,
                difference.seconds if difference else None,
                difference.seconds_interval if difference else None,
                difference.relative if difference else None,
                difference.relative_interval if difference else None,
                result.p_value,
                p_adjusted,
                result.probability_greater,
                significant,
                _verdict(baseline, arm, p_adjusted, alpha, significant, adjust, difference),
            )
        )
    return comparisons


def build_report(
    samples: Iterable[TraceSample],
    ttft: Mapping[int, Mapping[str, float]] | None = None,
    alpha: float = DEFAULT_ALPHA,
    experiment: str | None = None,
) -> Report:
    """The report over ``samples``; ``ttft`` maps a percentile (50, 95) to seconds per arm."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1 (exclusive)")
    grouped: dict[str, list[TraceSample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.arm].append(sample)
    arms = sorted(grouped)
    stats = [arm_stats(arm, grouped[arm], ttft or {}) for arm in arms]
    if len(arms) < 2:
        return Report(experiment, alpha, stats)
    durations = {arm: [s.duration_s for s in grouped[arm]] for arm in arms}
    baseline = min(arms, key=lambda arm: (percentile(durations[arm], 50), arm))
    comparisons = compare(baseline, [arm for arm in arms if arm != baseline], durations, alpha)
    slowest = max(comparisons, key=lambda c: (c.median_ratio or 0.0, c.arm))
    correction = HOLM if len(comparisons) > 1 else None
    return Report(experiment, alpha, stats, comparisons, slowest.arm, slowest.significant, correction)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def render_table(report: Report) -> str:
    """A plain-text table, one row per arm, then one verdict line per comparison."""
    header = (
        "arm",
        "requests",
        "error %",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50 ms",
        "ttft p95 ms",
        "tokens/req",
    )
    rows = [header] + [
        (
            s.arm,
            str(s.requests),
            f"{s.error_rate * 100:.1f}",
            _ms(s.p50_s),
            _ms(s.p95_s),
            _ms(s.p99_s),
            _ms(s.ttft_p50_s),
            _ms(s.ttft_p95_s),
            "-" if s.tokens_per_request is None else f"{s.tokens_per_request:.1f}",
        )
        for s in report.arms
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    title = f"experiment: {report.experiment or '(all)'}    alpha: {report.alpha}"
    if report.correction:
        title += f"    {len(report.comparisons)} comparisons, p-values {report.correction}-adjusted"
    verdicts = [c.verdict for c in report.comparisons] or ["only one arm has data: nothing to compare"]
    return "\n".join([title, *lines, "", *verdicts])
