"""The A/B report as a PNG: latency percentiles and TTFT per arm, and error rate, via matplotlib.

Arms are rows (horizontal bars), so long ``provider:model`` names are written once, in full, on the shared
axis; every bar carries its value. The error-rate axis runs from 0 to at least ``MIN_ERROR_AXIS_PERCENT``, so
a report without errors shows a flat 0 on a readable scale. The verdicts are wrapped under the title.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from otel_llm.ab.report import Report

SERIES = (("p50", "p50_s"), ("p95", "p95_s"), ("p99", "p99_s"), ("TTFT p50", "ttft_p50_s"))
MIN_ERROR_AXIS_PERCENT = 5.0
VERDICT_WRAP_CHARS = 120


def write_chart(report: Report, path: str | Path) -> Path:
    """Draws the report's per-arm p50/p95/p99, TTFT p50 and error rate into a PNG at ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and never pick up a GUI backend from the environment
    from matplotlib import pyplot

    arms = report.arms
    verdicts = [c.verdict for c in report.comparisons] or ["one arm only: nothing to compare"]
    wrapped = [textwrap.fill(v, VERDICT_WRAP_CHARS) for v in verdicts]
    figure, (latency, errors) = pyplot.subplots(
        1,
        2,
        figsize=(12, 2.6 + 0.9 * len(arms) + 0.25 * sum(w.count("\n") + 1 for w in wrapped)),
        width_ratios=(3, 1),
        sharey=True,
        layout="constrained",
    )
    height = 0.8 / len(SERIES)
    rows = range(len(arms))
    for index, (label, attribute) in enumerate(SERIES):
        values = [(getattr(s, attribute) or 0.0) * 1000 for s in arms]
        bars = latency.barh([row + index * height for row in rows], values, height, label=label)
        latency.bar_label(bars, fmt="%.0f", padding=2, fontsize=7)
    latency.set_yticks([row + height * (len(SERIES) - 1) / 2 for row in rows], [s.arm for s in arms])
    latency.invert_yaxis()  # first arm on top
    latency.set_xlabel("ms")
    latency.margins(x=0.12)
    latency.set_title("Latency (trace duration) and time to first token")
    figure.legend(loc="outside lower center", ncols=len(SERIES), fontsize=8)
    rates = [s.error_rate * 100 for s in arms]
    centres = [row + height * (len(SERIES) - 1) / 2 for row in rows]
    bars = errors.barh(centres, rates, height * 2, color="tab:red")
    errors.bar_label(bars, fmt="%.1f %%", padding=2, fontsize=8)
    errors.set_xlim(0, max(MIN_ERROR_AXIS_PERCENT, max(rates, default=0.0) * 1.4))
    errors.set_xlabel("% of requests")
    errors.set_title("Error rate")
    figure.suptitle(f"experiment {report.experiment or '(all)'}\n" + "\n".join(wrapped), fontsize=9)
    target = Path(path)
    figure.savefig(target, format="png", dpi=100)
    pyplot.close(figure)
    return target
