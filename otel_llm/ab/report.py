"""The per-arm comparison: requests, error rate, latency percentiles, TTFT, tokens, and significance.

The fastest arm (lowest median trace duration) is the baseline; every other arm is compared with it by a
two-sided Mann-Whitney U test on trace durations. With two or more comparisons (three or more arms) the
p-values are adjusted by Holm's step-down method (``stats.holm``), so the chance of calling any arm slower by
accident stays at ``alpha`` however many arms there are. An arm is called slower *significantly* when its
(adjusted) p-value is below ``alpha``; with too few samples the p-value is None and nothing is called
significant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from otel_llm.ab.sources import TraceSample
from otel_llm.ab.stats import MIN_SAMPLES, holm, mann_whitney_u, percentile

DEFAULT_ALPHA = 0.05
LATENCY_PERCENTILES = (50, 95, 99)
HOLM = "holm"


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
    tokens_per_request: float | None


@dataclass(frozen=True)
class Comparison:
    """An arm against the baseline (the fastest arm)."""

    baseline: str
    arm: str
    median_ratio: float | None  # arm median / baseline median
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
    durations = [s.duration_s for s in samples]
    errors = sum(s.error for s in samples)
    tokens = [s.tokens for s in samples if s.tokens is not None]
    p50, p95, p99 = (percentile(durations, q) for q in LATENCY_PERCENTILES)
    return ArmStats(
        arm=arm,
        requests=len(samples),
        errors=errors,
        error_rate=errors / len(samples) if samples else 0.0,
        p50_s=p50,
        p95_s=p95,
        p99_s=p99,
        ttft_p50_s=ttft.get(50, {}).get(arm),
        ttft_p95_s=ttft.get(95, {}).get(arm),
        tokens_per_request=sum(tokens) / len(tokens) if tokens else None,
    )


def _verdict(
    baseline: str, arm: str, p: float | None, alpha: float, significant: bool, adjusted: bool
) -> str:
    if p is None:
        return f"too few requests to judge (need {MIN_SAMPLES} per arm)"
    p_text = f"{'Holm-adjusted ' if adjusted else ''}p={p:.3g}"
    if significant:
        return f"{arm} is slower than {baseline} ({p_text} < {alpha})"
    return f"no significant difference between {arm} and {baseline} ({p_text} >= {alpha})"


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
        significant = p_adjusted is not None and p_adjusted < alpha
        comparisons.append(
            Comparison(
                baseline,
                arm,
                ratio,
                result.p_value,
                p_adjusted,
                result.probability_greater,
                significant,
                _verdict(baseline, arm, p_adjusted, alpha, significant, adjust),
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
