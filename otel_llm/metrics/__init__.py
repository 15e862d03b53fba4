"""Metrics: GenAI metric views, the provider/model cardinality cap, span-derived LLM metrics, token-stream
metrics, and the pipeline's own health metrics.

- ``views``: semconv bucket boundaries and an attribute allowlist for the four ``gen_ai.client.*`` histograms.
- ``cardinality``: ``CardinalityLimitedMeterProvider``, folding provider/model values past N into ``_OTHER``.
- ``from_spans``: ``SpanDerivedMetrics``, duration and token usage from each LLM span, once.
- ``streaming``: token-stream metrics recorded once per stream.
- ``health``: dropped spans and roll-up counters as ``otel_llm.*`` observable metrics.
"""
