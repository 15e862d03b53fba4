"""Metrics: GenAI metric views, the provider/model cardinality cap, span-derived LLM metrics, token-stream
metrics, and the pipeline's own health metrics.

- ``views``: semconv bucket boundaries and an attribute allowlist for the four ``gen_ai.client.*`` histograms.
- ``cardinality``: ``CardinalityLimitedMeterProvider``, folding provider/model values past N into ``_OTHER``;
  the provider label of instrumentations' own GenAI points (Azure host, ``gen_ai.system`` translated).
- ``recorded``: which calls instrumentations recorded GenAI metrics for, seen from their recordings.
- ``from_spans``: ``SpanDerivedMetrics``, duration, token usage and token details from each LLM span, only for
  calls no instrumentation counted.
- ``streaming``: token-stream metrics recorded once per stream.
- ``health``: dropped spans and roll-up counters as ``otel_llm.*`` observable metrics.
"""
