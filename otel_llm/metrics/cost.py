"""Cost metrics: the money LLM calls cost, and the calls no price was found for, recorded from their spans.

Adds ``llm.client.cost`` (a counter of the amount, labelled with ``llm.usage.cost.currency`` and
``llm.usage.cost.source``) and ``llm.client.cost.unpriced_calls`` (a counter of calls, labelled with
``llm.cost.unpriced_reason``: unknown_model | missing_tokens | catalogue_unavailable), once per model call:
the roll-up stage's ``on_llm_span`` hook sees each outermost LLM span once, with the calls nested beneath
it (one call wrapped by two instrumentations); the outermost's cost counts, else the first nested one's.
The other labels are the span-derived metrics' (provider, model, operation, node, experiment id and arm,
server), kept by the views' allowlist (otel_llm.metrics.views) under the same series cap. No
instrumentation records these, so unlike the duration and token metrics nothing is left to one.

Divide ``llm.client.cost`` by the request count of the same labels for cost per request per arm (the
dashboard and the alert example do).

Cost: on the export thread, per call: a few attribute reads and one counter add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm import semconv
from otel_llm.metrics.from_spans import metric_attributes
from otel_llm.processors.normalize import LLMCall

METER_NAME = "otel_llm.metrics.cost"


class CostMetrics:
    """Records the cost of each priced call and counts the calls without price."""

    def __init__(self, meter_provider: metrics.MeterProvider | None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._cost = meter.create_counter(semconv.METRIC_COST, "{cost}",
                                          "What LLM calls cost, in llm.usage.cost.currency")
        self._unpriced = meter.create_counter(semconv.METRIC_UNPRICED_CALLS, "{call}",
                                              "LLM calls no price was found for")

    def record(self, span: ReadableSpan, call: LLMCall, nested: Sequence[LLMCall] = ()) -> None:
        """Record one model call (the roll-up stage's ``on_llm_span`` hook; it catches what this raises)."""
        cost = call.cost
        if cost is None:  # the stage has no pricer
            return
        if cost.amount is None:
            cost = next((inner.cost for inner in nested
                         if inner.cost is not None and inner.cost.amount is not None), cost)
        attributes: dict[str, Any] = metric_attributes(span.attributes or {}, call)
        if cost.amount is None:
            self._unpriced.add(1, {**attributes, semconv.COST_UNPRICED_REASON: cost.unpriced})
        else:
            self._cost.add(cost.amount, {**attributes, semconv.COST_CURRENCY: cost.currency,
                                         semconv.COST_SOURCE: cost.source})
