"""SLO verdicts of a load run, counted from Prometheus: the Eco2 agent's P50/P95/P99 targets per feature/arm.

The targets come from ``slos.yaml`` (next to this module), the file the alert rules are checked against. Each
SLO is a histogram in Prometheus (the collector's span metrics for node and whole-response spans, the SDK's
``chat_stream_token_latency`` for token publishing). Before the load :func:`take_snapshot` reads every SLO
histogram's cumulative bucket counters per experiment arm (``llm_experiment_arm``; empty without an
experiment) and the duration sums and counts of every LangGraph node span; after the load it reads them again,
and :func:`verdicts` judges the difference: exactly the observations made during the run, whatever else the
stack saw before, with no ``rate()`` window to choose.

A percentile passes when at least that fraction of the run's observations lie at or under the target: a count
of one bucket, exact because every target is a bucket boundary (checked by the unit tests). The displayed
percentile is Prometheus' ``histogram_quantile`` interpolation of the same buckets. A failing SLO names the
LangGraph node of the arm with the longest mean duration in the run (of the SLO's intent where it has one) and
the provider/model the roll-up put on that node's spans (``llm.rollup.provider`` / ``llm.rollup.model``).

Cost: one instant query per SLO plus three, per snapshot; nothing in the app.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SLO_FILE = Path(__file__).with_name("slos.yaml")
PERCENTILES: Mapping[str, float] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
ARM_LABEL = "llm_experiment_arm"
INTENT_LABEL = "langsmith_metadata_intent"
NODE_LABEL = "llm_langgraph_node"
SPAN_NAME_LABEL = "span_name"
ROLLUP_PROVIDER_LABEL = "llm_rollup_provider"
ROLLUP_MODEL_LABEL = "llm_rollup_model"
SPAN_DURATION_METRIC = "traces_span_metrics_duration_milliseconds"
UNIT_SCALE_MS = {"ms": 1.0, "s": 1000.0}  # milliseconds per unit of the histogram
# The LangGraph runs (one per accepted job of the reference app) the span metrics counted: how the command
# knows Prometheus has caught up with the load.
RUNS_QUERY = 'sum(traces_span_metrics_calls_total{gen_ai_operation_name="invoke_workflow"})'
NODE_LABELS = (
    SPAN_NAME_LABEL,
    NODE_LABEL,
    ARM_LABEL,
    INTENT_LABEL,
    ROLLUP_PROVIDER_LABEL,
    ROLLUP_MODEL_LABEL,
)

Query = Callable[[str], list[tuple[dict[str, str], float]]]  # PromQL -> (labels, value) per series
Counts = dict[tuple[tuple[str, str], ...], float]  # sorted label items -> cumulative value
Snapshot = dict[str, Counts]  # PromQL -> its series


@dataclass(frozen=True)
class Slo:
    """One row of the Eco2 agent's table: a histogram, the series of it that count, the targets in ms."""

    name: str
    title: str
    metric: str
    unit: str
    matchers: Mapping[str, str]
    targets_ms: Mapping[str, float]
    alert: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.unit not in UNIT_SCALE_MS:
            raise ValueError(
                f"SLO {self.name}: unit must be one of {', '.join(UNIT_SCALE_MS)}, got {self.unit!r}"
            )
        if set(self.targets_ms) != set(PERCENTILES):
            raise ValueError(f"SLO {self.name}: targets_ms must give exactly {', '.join(PERCENTILES)}")

    @property
    def bucket_query(self) -> str:
        selectors = ", ".join(f'{key}="{value}"' for key, value in sorted(self.matchers.items()))
        return f"sum by (le, {ARM_LABEL}) ({self.metric}_bucket{{{selectors}}})"

    def target_in_unit(self, percentile: str) -> float:
        return self.targets_ms[percentile] / UNIT_SCALE_MS[self.unit]


def load_slos(path: Path = SLO_FILE) -> tuple[Slo, ...]:
    """The SLOs of ``path`` (default: the package's ``slos.yaml``)."""
    import yaml

    document = yaml.safe_load(Path(path).read_text())
    return tuple(
        Slo(
            name=row["name"],
            title=row["title"],
            metric=row["metric"],
            unit=row["unit"],
            matchers={str(k): str(v) for k, v in (row.get("matchers") or {}).items()},
            targets_ms={str(k): float(v) for k, v in row["targets_ms"].items()},
            alert=dict(row.get("alert") or {}),
        )
        for row in document["slos"]
    )


def node_queries() -> tuple[str, str]:
    """The sum and count of every LangGraph node span's duration, by node, arm, intent and roll-up."""
    by = ", ".join(NODE_LABELS)
    return tuple(  # type: ignore[return-value]
        f'sum by ({by}) ({SPAN_DURATION_METRIC}_{suffix}{{{NODE_LABEL}!=""}})' for suffix in ("sum", "count")
    )


def queries(slos: Iterable[Slo]) -> list[str]:
    return [*(slo.bucket_query for slo in slos), *node_queries(), RUNS_QUERY]


def runs_counted(delta: Snapshot) -> int:
    """LangGraph runs the span metrics counted between the snapshots of ``delta``."""
    return int(round(sum(delta.get(RUNS_QUERY, {}).values())))


def take_snapshot(query: Query, slos: Iterable[Slo]) -> Snapshot:
    """Every series of every query the verdicts need, as they are now."""
    return {
        promql: {tuple(sorted(labels.items())): value for labels, value in query(promql)}
        for promql in queries(slos)
    }


def difference(after: Snapshot, before: Snapshot) -> Snapshot:
    """What each series counted between the snapshots (a series new since ``before`` counts from 0)."""
    return {
        promql: {key: value - before.get(promql, {}).get(key, 0.0) for key, value in series.items()}
        for promql, series in after.items()
    }


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' interpolation of the ``q`` quantile from cumulative ``buckets`` (upper bound -> count)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass
class Verdict:
    """One SLO on one arm: what the run measured against the targets, and where the time went if it failed."""

    slo: str
    title: str
    arm: str
    count: int
    measured_ms: dict[str, float | None]
    targets_ms: dict[str, float]
    within_target: dict[str, int]  # observations at or under each target
    passed: dict[str, bool]
    ok: bool
    slowest_node: str | None = None
    slowest_node_mean_ms: float | None = None
    provider: str | None = None
    model: str | None = None
    alert: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_arm_buckets(series: Counts) -> dict[str, dict[float, float]]:
    per_arm: dict[str, dict[float, float]] = defaultdict(dict)
    for key, value in series.items():
        labels = dict(key)
        if "le" in labels:
            per_arm[labels.get(ARM_LABEL, "")][float(labels["le"])] = value
    return per_arm


def _slowest_node(delta: Snapshot, arm: str, intent: str | None) -> tuple[str, float, str, str] | None:
    """(node, mean ms, provider, model) of the arm's node with the longest mean duration in the run."""
    sums, counts = (delta.get(promql, {}) for promql in node_queries())
    nodes: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    rollup: dict[str, tuple[float, str, str]] = {}
    for key, count in counts.items():
        labels = dict(key)
        node = labels.get(NODE_LABEL, "")
        if count <= 0 or labels.get(SPAN_NAME_LABEL) != node or labels.get(ARM_LABEL, "") != arm:
            continue
        if intent is not None and labels.get(INTENT_LABEL) != intent:
            continue
        nodes[node][0] += sums.get(key, 0.0)
        nodes[node][1] += count
        if count > rollup.get(node, (0.0, "", ""))[0]:
            rollup[node] = (count, labels.get(ROLLUP_PROVIDER_LABEL, ""), labels.get(ROLLUP_MODEL_LABEL, ""))
    if not nodes:
        return None
    node = max(nodes, key=lambda name: nodes[name][0] / nodes[name][1])
    return node, nodes[node][0] / nodes[node][1], rollup[node][1], rollup[node][2]


def verdicts(slos: Iterable[Slo], delta: Snapshot) -> list[Verdict]:
    """One verdict per SLO and arm that saw observations in ``delta``, in the file's order, arms sorted."""
    out = []
    for slo in slos:
        for arm, buckets in sorted(_per_arm_buckets(delta.get(slo.bucket_query, {})).items()):
            total = int(round(max(buckets.values(), default=0)))
            if total <= 0:
                continue
            scale = UNIT_SCALE_MS[slo.unit]
            within = {p: int(round(_count_at(buckets, slo.target_in_unit(p)))) for p in PERCENTILES}
            passed = {p: within[p] >= q * total for p, q in PERCENTILES.items()}
            measured = {p: _scaled(histogram_quantile(q, buckets), scale) for p, q in PERCENTILES.items()}
            verdict = Verdict(
                slo.name,
                slo.title,
                arm,
                total,
                measured,
                dict(slo.targets_ms),
                within,
                passed,
                all(passed.values()),
                alert=slo.alert.get("name"),
            )
            if not verdict.ok:
                slowest = _slowest_node(delta, arm, slo.matchers.get(INTENT_LABEL))
                if slowest is not None:
                    node, mean_ms, provider, model = slowest
                    verdict.slowest_node, verdict.slowest_node_mean_ms = node, mean_ms
                    verdict.provider, verdict.model = provider or None, model or None
            out.append(verdict)
    return out


def _count_at(buckets: Mapping[float, float], bound: float) -> float:
    """The cumulative count of the bucket whose upper bound is ``bound``; a bound that is none is an error."""
    for upper, count in buckets.items():
        if math.isclose(upper, bound, rel_tol=1e-9):
            return count
    raise ValueError(f"{bound} is not a bucket boundary of the histogram (bounds: {sorted(buckets)})")


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale
