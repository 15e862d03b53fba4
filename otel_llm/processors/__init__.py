"""otel-llm's span pipeline pieces: baggage on the application thread, enrichment and roll-up on the export
side.

- ``baggage``: ``BaggageAttributesProcessor`` (allowlisted baggage to span attributes at start) and
  ``EdgeBaggagePropagator`` (drops untrusted incoming baggage at the server edge).
- ``normalize``: what an ended span says about one LLM call (``LLMCall``), and the enrichment it gets.
- ``rollup``: ``RollupSpanExporter``, the export-side stage that stamps LLM roll-ups on ancestors.
"""
