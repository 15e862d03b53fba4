"""The A/B report as a PNG: latency percentiles per arm (grouped bars) and error rate, via matplotlib."""

from __future__ import annotations

from pathlib import Path

from otel_llm.ab.report import Report


def write_chart(report: Report, path: str | Path) -> Path:
    """Draws the report's per-arm p50/p95/p99 and TTFT p50 into a PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and never pick up a GUI backend from the environment
    from matplotlib import pyplot

    series = [("p50", "p50_s"), ("p95", "p95_s"), ("p99", "p99_s"), ("TTFT p50", "ttft_p50_s")]
    arms = report.arms
    figure, (latency, errors) = pyplot.subplots(1, 2, figsize=(11, 4.5), width_ratios=(3, 1))
    width = 0.8 / len(series)
    for index, (label, attribute) in enumerate(series):
        values = [(getattr(s, attribute) or 0.0) * 1000 for s in arms]
        latency.bar([i + index * width for i in range(len(arms))], values, width, label=label)
    latency.set_xticks(
        [i + width * (len(series) - 1) / 2 for i in range(len(arms))], [s.arm for s in arms], fontsize=8
    )
    latency.set_ylabel("ms")
    latency.set_title("Latency per arm (trace duration) and time to first token")
    latency.legend()
    errors.bar(range(len(arms)), [s.error_rate * 100 for s in arms], color="tab:red")
    errors.set_xticks(range(len(arms)), [s.arm for s in arms], fontsize=8, rotation=15)
    errors.set_ylabel("%")
    errors.set_title("Error rate")
    verdict = "; ".join(c.verdict for c in report.comparisons) or "one arm only"
    figure.suptitle(f"experiment {report.experiment or '(all)'}: {verdict}", fontsize=9)
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, format="png", dpi=100)
    pyplot.close(figure)
    return target
