"""What ``otel-llm load`` prints: the run (requests, rate, errors per intent) and the SLO verdicts as a table,
JSON or a PNG of each SLO's measured P50/P95/P99 per arm against its targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_llm.load.slo import PERCENTILES, Verdict

NO_ARM = "(no experiment)"
FLOOR_MS = 0.01  # the chart's log axis starts at or above this (a zero bar is drawn at it)


@dataclass
class LoadReport:
    url: str
    stages: str
    duration_s: float
    requests: int
    failures: int
    accepted_by_intent: Mapping[str, int]
    settled: bool  # Prometheus held every accepted job's run (and stopped changing) before the verdicts
    verdicts: Sequence[Verdict]

    @property
    def ok(self) -> bool:
        return all(verdict.ok for verdict in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stages": self.stages,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "failures": self.failures,
            "requests_per_s": round(self.requests / self.duration_s, 3) if self.duration_s else 0.0,
            "accepted_by_intent": dict(self.accepted_by_intent),
            "settled": self.settled,
            "ok": self.ok,
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _bottleneck(verdict: Verdict) -> str:
    if verdict.ok:
        return ""
    if verdict.slowest_node is None:
        return "no node spans in the run"
    beneath = "/".join(part for part in (verdict.provider, verdict.model) if part) or "no LLM call"
    return f"node {verdict.slowest_node} ({_ms(verdict.slowest_node_mean_ms)} ms mean), {beneath}"


def render_table(report: LoadReport) -> str:
    rate = report.requests / report.duration_s if report.duration_s else 0.0
    intents = ", ".join(f"{intent} {count}" for intent, count in sorted(report.accepted_by_intent.items()))
    lines = [
        f"{report.url}  stages {report.stages}  {report.duration_s:.0f} s  {report.requests} requests "
        f"({rate:.1f}/s)  {report.failures} failed checks  accepted: {intents or 'none'}",
    ]
    if not report.settled:
        lines.append(
            "warning: Prometheus had not caught up with every accepted job; verdicts may miss the last"
        )
    header = ("SLO", "arm", "n", *(f"{p} ms (target)" for p in PERCENTILES), "verdict", "bottleneck")
    rows = [
        (
            v.title,
            v.arm or NO_ARM,
            str(v.count),
            *(
                f"{_ms(v.measured_ms[p])} ({v.targets_ms[p]:.0f}){'' if v.passed[p] else ' !'}"
                for p in PERCENTILES
            ),
            "pass" if v.ok else "FAIL",
            _bottleneck(v),
        )
        for v in report.verdicts
    ]
    if not rows:
        lines.append("no SLO series counted anything during the run (is the app sending to this Prometheus?)")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def write_chart(report: LoadReport, path: str | Path) -> Path:
    """One panel per SLO: each arm's P50/P95/P99 as bars on a log axis, the targets as dashed outlines behind
    them; a failing percentile's bar is hatched red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(dict.fromkeys(v.title for v in report.verdicts))
    figure, axes = plt.subplots(
        1, max(len(titles), 1), figsize=(3.2 * max(len(titles), 1), 3.6), squeeze=False
    )
    colors = plt.get_cmap("tab10").colors
    arms = sorted({v.arm for v in report.verdicts})
    labels = list(PERCENTILES)
    for axis, title in zip(axes[0], titles, strict=False):
        of_slo = [v for v in report.verdicts if v.title == title]
        width = 0.8 / (len(of_slo) + 1)
        targets = [of_slo[0].targets_ms[p] for p in labels]
        axis.bar(
            range(len(labels)),
            targets,
            width=0.9,
            color="none",
            edgecolor="black",
            linestyle="--",
            label="target",
        )
        for index, verdict in enumerate(of_slo):
            offsets = [x - 0.4 + width * (index + 1) for x in range(len(labels))]
            values = [max(verdict.measured_ms[p] or 0.0, FLOOR_MS) for p in labels]
            bars = axis.bar(
                offsets,
                values,
                width=width,
                color=colors[arms.index(verdict.arm) % len(colors)],
                label=verdict.arm or NO_ARM,
            )
            for bar, p in zip(bars, labels, strict=True):
                if not verdict.passed[p]:
                    bar.set_hatch("///")
                    bar.set_edgecolor("red")
        axis.set_xticks(range(len(labels)), labels)
        verdict_word = "pass" if all(v.ok for v in of_slo) else "FAIL"
        axis.set_title(
            f"{title}\n{verdict_word}", fontsize=9, color="black" if verdict_word == "pass" else "red"
        )
        axis.set_yscale("log")  # retrieval's few ms and its 2 s target on one axis
        shown = [value for v in of_slo for value in v.measured_ms.values() if value] + targets
        axis.set_ylim(max(min(shown) / 3, FLOOR_MS), max(shown) * 3)
        axis.set_ylabel("ms (log)")
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    figure.suptitle(
        f"SLO verdicts: {report.requests} requests, stages {report.stages}; "
        "dashed: target, hatched red: over it",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.08, 1, 0.95))
    target = Path(path)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target
