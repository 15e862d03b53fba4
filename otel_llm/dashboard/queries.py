"""The dashboard's PromQL: which label of each metric family a dashboard variable filters, the per
provider/model/arm request queries, and the alert rules' expressions as panel queries.

Plain strings, no Grafana dependency. Every selector of our metrics filters on the dashboard's variables
``$service``, ``$provider``, ``$model`` and ``$arm`` (regex matchers: "All" is ``.*``, which also matches
series without the label, such as requests outside an experiment). Windows are fixed at 5 minutes, as in
the Eco2 agent's queries and the alert rules, so a panel shows what an alert would evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

WINDOW = "5m"
QUANTILES = (0.5, 0.95, 0.99)
DURATION_HISTOGRAM = "gen_ai_client_operation_duration_seconds"
TOKEN_USAGE_HISTOGRAM = "gen_ai_client_token_usage"
TOKEN_TYPE = "gen_ai_token_type"


@dataclass(frozen=True)
class Labels:
    """The Prometheus label a metric family carries for each dashboard variable (``None``: not filtered)."""

    service: str = "job"  # service.name, as the collector's prometheus exporter names it
    provider: str | None = "gen_ai_provider_name"
    model: str | None = "gen_ai_request_model"
    arm: str = "llm_experiment_arm"

    def selector(self, metric: str, *matchers: str) -> str:
        """``metric`` with the variables' matchers and ``matchers``."""
        variables = (
            (self.service, "service"),
            (self.provider, "provider"),
            (self.model, "model"),
            (self.arm, "arm"),
        )
        filters = [f'{label}=~"${name}"' for label, name in variables if label]
        return f"{metric}{{{', '.join([*filters, *matchers])}}}"


GENAI = Labels()  # gen_ai_client_*, llm_experiment_fallbacks_total (the provider/model actually used)
# The Eco2 agent's chat_stream_* metrics follow Service and Experiment arm only: their provider/model labels
# are the ones the app passed when the stream started (the arm's, in the reference app), which after a
# fallback is not who served the calls (gen_ai_provider_name); the arm variable is the per provider:model
# filter for streams.
STREAM = Labels(provider=None, model=None)


@dataclass(frozen=True)
class Variable:
    """A dashboard variable: its name, label and the ``label_values`` query listing its values."""

    name: str
    label: str
    query: str


# Services: those that made LLM calls, produced streams or served recoveries (the API). The others are
# chained: a provider's models, the arms of the chosen services, from the LLM call durations, the one metric
# every instrumented LLM call records (otel_llm.metrics.from_spans or its instrumentation).
SERVICE_METRICS = (f"{DURATION_HISTOGRAM}_count", "chat_stream_requests_total", "chat_stream_recovery_total")
VARIABLES = (
    Variable(
        "service", "Service", f'label_values({{__name__=~"{"|".join(SERVICE_METRICS)}"}}, {GENAI.service})'
    ),
    Variable(
        "provider",
        "Provider",
        f'label_values({DURATION_HISTOGRAM}_count{{{GENAI.service}=~"$service"}}, {GENAI.provider})',
    ),
    Variable(
        "model",
        "Model",
        f'label_values({DURATION_HISTOGRAM}_count{{{GENAI.service}=~"$service", '
        f'{GENAI.provider}=~"$provider"}}, {GENAI.model})',
    ),
    Variable(
        "arm",
        "Experiment arm",
        f'label_values({DURATION_HISTOGRAM}_count{{{GENAI.service}=~"$service"}}, {GENAI.arm})',
    ),
)


def legend(*labels: str) -> str:
    """A Grafana legend showing each of ``labels``' values: ``{{a}} {{b}}``."""
    return " ".join("{{" + label + "}}" for label in labels)


def rate(selector: str) -> str:
    return f"rate({selector}[{WINDOW}])"


def quantile(q: float, by: str, buckets_selector: str) -> str:
    """The ``q`` quantile per ``by`` (labels, or "" for one series) of a histogram's buckets."""
    labels = ", ".join(["le", by] if by else ["le"])
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(buckets_selector)}))"


def ratio_or_zero(by: str, part: str, whole: str) -> str:
    """``part / whole`` per ``by``, 0 (not absent) where ``part`` has no series."""
    total = f"sum by ({by}) ({rate(whole)})"
    return f"(sum by ({by}) ({rate(part)}) or 0 * {total}) / {total}"


@dataclass(frozen=True)
class Requests:
    """Requests with a latency histogram: what one row of rate, error and p50/p95/p99 panels per
    provider/model/arm reads. ``failed`` selects the failed ones; ``where`` narrows every selector."""

    title: str
    count: str
    buckets: str
    unit: str  # of the buckets, as Grafana names it
    failed: str
    labels: Labels = GENAI
    where: tuple[str, ...] = ()

    @property
    def by(self) -> str:
        return f"{self.labels.provider}, {self.labels.model}, {self.labels.arm}"

    @property
    def legend(self) -> str:
        return legend(*self.by.split(", "))

    def rate(self) -> str:
        return f"sum by ({self.by}) ({rate(self.labels.selector(self.count, *self.where))})"

    def error_ratio(self) -> str:
        return ratio_or_zero(
            self.by,
            self.labels.selector(self.count, *self.where, self.failed),
            self.labels.selector(self.count, *self.where),
        )

    def quantile(self, q: float) -> str:
        return quantile(q, self.by, self.labels.selector(self.buckets, *self.where))


# The request's local root (the SERVER span of an app calling the LLM in its handler, the CONSUMER span of a
# queue worker) in the collector's span metrics, by the roll-up of the LLM calls beneath it: comma-joined
# names when a request used several providers or models (docs/attributes.md).
ROLLUP = Labels(provider="llm_rollup_provider", model="llm_rollup_model")
# One span per request: the collector's llm_rollup adds `llm.request` (root's start to the last span's end,
# with the request's roll-up and arm). Selecting local roots instead counts a request once per service, since
# the collector rolls the calls up onto the API's root and the worker's entry span alike.
REQUEST_SPANS = ('span_name="llm.request"',)

# Cost (otel_llm/metrics/cost.py): the amount counter carries provider, model, arm and currency; per request
# it is divided by the requests' local roots of the same arm (one per request: the root whose roll-up has
# calls).
COST_COUNTER = "llm_client_cost_total"
UNPRICED_COUNTER = "llm_client_cost_unpriced_calls_total"
CURRENCY = "llm_usage_cost_currency"
UNPRICED_REASON = "llm_cost_unpriced_reason"
REQUEST_COUNTER = "traces_span_metrics_calls_total"

# One row of panels each. The collector's trace processor (end-to-end request latency per provider/model/arm
# through span metrics) adds its row here, one Requests(...) with its metric names and labels.
REQUESTS = (
    Requests(
        "LLM calls",
        f"{DURATION_HISTOGRAM}_count",
        f"{DURATION_HISTOGRAM}_bucket",
        "s",
        failed='error_type!=""',
    ),
    Requests(
        "Requests (end to end)",
        "traces_span_metrics_calls_total",
        "traces_span_metrics_duration_milliseconds_bucket",
        "ms",
        failed='status_code="STATUS_CODE_ERROR"',
        labels=ROLLUP,
        where=REQUEST_SPANS,
    ),
)


@dataclass(frozen=True)
class AlertView:
    """An alert rule as a panel: the value it compares and the limit it compares it with (a number drawn as a
    threshold, or a series of its own such as a recorded SLO)."""

    name: str
    summary: str
    value: str
    threshold: float | None
    limit: str | None

    @property
    def unit(self) -> str:
        for pattern, unit in _UNITS:
            if pattern.search(self.value):
                return unit
        return "short"


_UNITS = (
    (re.compile(r"_ms\b|_milliseconds"), "ms"),
    (re.compile(r"_seconds"), "s"),
    (re.compile(r"ratio"), "percentunit"),
)
_LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")  # an alert summary's label, shown as <name>
_COMPARISON = re.compile(r"^(?P<value>.+) > (?:on \([^)]*\) group_left(?: \([^)]*\))? )?(?P<limit>[^>]+)$")


def alert_views(rules: Path) -> Iterator[AlertView]:
    """Every alert of the rule file ``rules`` as an AlertView; ValueError naming an alert that is not
    ``value > limit``."""
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            expr = " ".join(rule["expr"].split())
            match = _COMPARISON.match(expr)
            if match is None:
                raise ValueError(f"alert {rule['alert']}: expression is not `value > limit`: {expr}")
            limit = match["limit"].strip()
            try:
                threshold, series = float(limit), None
            except ValueError:
                threshold, series = None, limit
            summary = _LABEL_TEMPLATE.sub(
                r"<\1>", " ".join(rule.get("annotations", {}).get("summary", "").split())
            )
            yield AlertView(rule["alert"], summary, match["value"].strip(), threshold, series)
