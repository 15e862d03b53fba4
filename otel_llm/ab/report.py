"""The per-arm comparison: requests, error rate, latency percentiles, TTFT, tokens, and significance.

The fastest arm (lowest median trace duration) is the baseline; every other arm is compared with it by a
two-sided Mann-Whitney U test on trace durations, and the difference of the medians is given with a
bootstrap confidence interval at level ``1 - alpha``, in seconds and relative to the baseline (``stats``).
With two or more comparisons (three or more arms) the p-values are adjusted by Holm's step-down method
(``stats.holm``), so the chance of calling any arm slower by accident stays at ``alpha`` however many arms
there are. An arm is called slower *significantly* when its (adjusted) p-value is below ``alpha``; with too
few samples the p-value is None and nothing is called significant.

Cost the same way: the cheapest arm (lowest mean cost per request, ``llm.usage.cost.amount`` summed over a
request's LLM calls) is the cost baseline; every other arm is compared with it by the same Mann-Whitney U
test on the per-request costs (Holm-adjusted likewise), and the difference is stated per 1,000 requests
(difference of the means, with its bootstrap interval): what a budget owner asks. Only requests with a cost
count; arms in different currencies are not compared.

Time to first token comes from the LLM spans of the arm's traces (``gen_ai.response.time_to_first_chunk``),
else from Prometheus for an arm none of whose spans carries it (``ttft_source`` says which).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from otel_llm.ab.sources import TraceSample
from otel_llm.ab.stats import (
    MIN_SAMPLES,
    Difference,
    holm,
    mann_whitney_u,
    mean_difference,
    median_difference,
    percentile,
)

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
    cost_per_request: float | None = None  # mean over the requests with a cost
    cost_currency: str | None = None
    priced_requests: int = 0


@dataclass(frozen=True)
class CostComparison:
    """An arm's cost per request against the cheapest arm's."""

    baseline: str
    arm: str
    currency: str
    difference_per_1000: float | None  # (arm mean - baseline mean) x 1000 requests
    difference_per_1000_ci: tuple[float, float] | None  # its bootstrap interval at 1 - alpha
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    verdict: str


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
    cost_comparisons: list[CostComparison] = field(default_factory=list)
    cheaper_arm: str | None = None  # the arm with the lowest mean cost per request
    cost_significant: bool = False  # cheaper_arm is significantly cheaper than the next-cheapest arm

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
    costs = [s.cost for s in samples if s.cost is not None]
    currencies = {s.cost_currency for s in samples if s.cost is not None}
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
        cost_per_request=sum(costs) / len(costs) if costs else None,
        cost_currency=",".join(sorted(currencies)) or None,
        priced_requests=len(costs),
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


def compare_costs(by_arm: Mapping[str, list[float]], currency: str, alpha: float) -> list[CostComparison]:
    """Every arm's per-request costs against the cheapest arm's (lowest mean); Holm with 3+ arms."""
    baseline = min(by_arm, key=lambda arm: (sum(by_arm[arm]) / len(by_arm[arm]), arm))
    others = [arm for arm in sorted(by_arm) if arm != baseline]
    results = [mann_whitney_u(by_arm[arm], by_arm[baseline]) for arm in others]
    adjust = len(others) > 1
    adjusted = holm([r.p_value for r in results]) if adjust else [r.p_value for r in results]
    comparisons = []
    for arm, result, p in zip(others, results, adjusted, strict=True):
        difference = interval = None
        if result.p_value is not None:
            difference, (low, high) = mean_difference(by_arm[arm], by_arm[baseline], 1 - alpha)
            difference, interval = difference * 1000, (low * 1000, high * 1000)
        significant = p is not None and p < alpha
        if p is None:
            verdict = f"cost: too few priced requests to judge (need {MIN_SAMPLES} per arm)"
        else:
            p_text = f"{'Holm-adjusted ' if adjust else ''}p={p:.3g}"
            size = (f"{difference:+.4g} {currency} per 1,000 requests ({(1 - alpha) * 100:g}% CI "
                    f"{interval[0]:+.4g} to {interval[1]:+.4g})")
            verdict = (f"cost: {baseline} is cheaper than {arm}: {arm} costs {size}; {p_text} < {alpha}"
                       if significant else
                       f"cost: no significant difference between {arm} and {baseline}: {size}; "
                       f"{p_text} >= {alpha}")
        comparisons.append(CostComparison(baseline, arm, currency, difference, interval, result.p_value, p,
                                          significant, verdict))
    return comparisons


def _cost_report(grouped: Mapping[str, list[TraceSample]], alpha: float) -> dict:
    """The cost fields of the report: comparisons, cheaper arm, whether it is significantly cheaper."""
    by_arm = {arm: [s.cost for s in samples if s.cost is not None] for arm, samples in grouped.items()}
    by_arm = {arm: costs for arm, costs in by_arm.items() if costs}
    currencies = {s.cost_currency for samples in grouped.values() for s in samples if s.cost is not None}
    if len(by_arm) < 2 or len(currencies) != 1:
        return {}
    comparisons = compare_costs(by_arm, currencies.pop(), alpha)
    closest = min(comparisons, key=lambda c: (c.difference_per_1000 is None, c.difference_per_1000 or 0.0))
    return {"cost_comparisons": comparisons, "cheaper_arm": closest.baseline,
            "cost_significant": closest.significant}


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
    return Report(experiment, alpha, stats, comparisons, slowest.arm, slowest.significant, correction,
                  **_cost_report(grouped, alpha))


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
        "cost/req",
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
            "-" if s.cost_per_request is None else f"{s.cost_per_request:.6f} {s.cost_currency}",
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
    verdicts += [c.verdict for c in report.cost_comparisons]
    return "\n".join([title, *lines, "", *verdicts])
