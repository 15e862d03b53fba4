"""Metric views for the GenAI client instruments: semconv bucket boundaries and an attribute allowlist each.

Adds, to a MeterProvider's views, one View per ``gen_ai.client.*`` histogram, whoever creates it (otel-llm's
span-derived metrics, the streaming metrics, an instrumentation library). Each view

- aggregates with the semantic conventions' explicit bucket boundaries (an instrument's own advisory
  boundaries are overridden, so every producer lands in the same buckets), and
- keeps only the allowlisted attribute keys: provider, model, operation, error type, server, experiment id
  and arm, and LangGraph node. Anything else (user, session or conversation ids copied from baggage,
  prompts, request ids) is dropped by the SDK before aggregation, so it never becomes a label.

Cost: the SDK filters attributes with one dict comprehension per recording; nothing on the span path.

Bucket boundaries are the GenAI semantic conventions' ("Semantic conventions for generative AI metrics",
open-telemetry/semantic-conventions-genai docs/gen-ai/gen-ai-metrics.md, as in semantic-conventions v1.38+):
each of these metrics "SHOULD be specified with ExplicitBucketBoundaries of [...]" the values below.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from otel_llm import semconv

# Seconds, doubling from 10 ms to 81.92 s: operation duration, time to first chunk, time per output chunk.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
# Tokens, powers of 4 from 1 to 4**13: token usage.
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)

# Keys every GenAI client metric may keep: bounded by what the app calls, not by who calls it. Provider and
# model values are also capped (otel_llm.metrics.cardinality); the experiment id is chosen by an operator
# (OTEL_LLM_EXPERIMENT_ID). Never user, session or conversation ids.
COMMON_METRIC_ATTRIBUTES: frozenset[str] = frozenset({
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_RESPONSE_MODEL,
    semconv.GEN_AI_OPERATION_NAME,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.EXPERIMENT_ID,
    semconv.EXPERIMENT_ARM,
    semconv.LANGGRAPH_NODE,
    semconv.OTEL_METRIC_OVERFLOW,  # only on the series cap's overflow series (metrics/cardinality.py)
})

# Instrument name -> (bucket boundaries, allowed keys). error.type where semconv defines it (duration);
# gen_ai.token.type on token usage only; the chunk metrics describe successful streams.
GENAI_METRIC_VIEWS: Mapping[str, tuple[tuple[float, ...], frozenset[str]]] = {
    semconv.METRIC_OPERATION_DURATION: (DURATION_BUCKETS_S, COMMON_METRIC_ATTRIBUTES | {semconv.ERROR_TYPE}),
    semconv.METRIC_TOKEN_USAGE: (TOKEN_BUCKETS, COMMON_METRIC_ATTRIBUTES | {semconv.GEN_AI_TOKEN_TYPE}),
    semconv.METRIC_TOKEN_USAGE_DETAIL: (TOKEN_BUCKETS, COMMON_METRIC_ATTRIBUTES | {semconv.TOKEN_DETAIL}),
    semconv.METRIC_TIME_TO_FIRST_CHUNK: (DURATION_BUCKETS_S, COMMON_METRIC_ATTRIBUTES),
    semconv.METRIC_TIME_PER_OUTPUT_CHUNK: (DURATION_BUCKETS_S, COMMON_METRIC_ATTRIBUTES),
}


def genai_views(aggregation_cardinality_limit: int | None = None) -> list[View]:
    """One View per GenAI client histogram: semconv buckets and the instrument's attribute allowlist.

    ``aggregation_cardinality_limit``: the SDK's series limit per view (None: the reader's, 2000); set it
    above the series cap (``cardinality.sdk_cardinality_limit``) so the SDK never folds a point first.
    """
    return [
        View(
            instrument_type=Histogram,
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=boundaries),
            attribute_keys=set(allowed),
            aggregation_cardinality_limit=aggregation_cardinality_limit,
        )
        for name, (boundaries, allowed) in GENAI_METRIC_VIEWS.items()
    ]
