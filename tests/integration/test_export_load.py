"""One process under load, through otel-llm's whole pipeline to the real collector and Jaeger: nothing lost
at a rate the plain SDK sustains, even when one roll-up flush holds several MB; past the pipeline's limits,
every lost span is counted (offered = in Jaeger + counted as dropped, exactly)."""

from __future__ import annotations

from tests.support.span_load import run_load, wait_for_spans

RATE = 2000  # spans/s: well under the plain SDK's ceiling here (~10,000, bench/bench_export_load.py)
SECONDS = 1.0
# A 30 KB prompt on every LLM span: a flush of the roll-up stage (0.5 s of traces) holds ~6 MB, over the
# collector's 4 MiB request limit, so it arrives only if the delivery stage cuts it.
PAYLOAD_BYTES = 30_000
SMALL_QUEUE = 512  # makes the unpaced run outrun the export thread, so spans are dropped (and counted)


def test_plain_sdk_control_loses_nothing_at_this_rate(own_stack):
    """Control without otel-llm: the collector and Jaeger take the paced load with large prompts whole."""
    result = run_load(own_stack.otlp_grpc_endpoint, "sdk", RATE, SECONDS, payload_bytes=PAYLOAD_BYTES)
    assert result["dropped"] == {}
    offered = result["offered"]
    assert wait_for_spans(own_stack.jaeger_query_url, result["service"], offered) == offered


def test_otel_llm_loses_nothing_at_the_same_rate_with_multi_megabyte_flushes(own_stack):
    """With otel-llm (roll-up in process) the same load arrives whole: no export passes the 4 MiB limit."""
    result = run_load(own_stack.otlp_grpc_endpoint, "otel-llm", RATE, SECONDS, payload_bytes=PAYLOAD_BYTES)
    assert result["dropped"] == {}
    offered = result["offered"]
    assert wait_for_spans(own_stack.jaeger_query_url, result["service"], offered) == offered


def test_past_the_limits_every_lost_span_is_counted(own_stack):
    """Unpaced with a small span queue: spans are dropped, and offered = in Jaeger + counted, exactly."""
    result = run_load(own_stack.otlp_grpc_endpoint, "otel-llm", 0, 1.0, queue_size=SMALL_QUEUE)
    dropped = sum(result["dropped"].values())
    assert dropped > 0, "the load did not outrun the pipeline; nothing was dropped to count"
    expected = result["offered"] - dropped
    assert wait_for_spans(own_stack.jaeger_query_url, result["service"], expected) == expected
