"""The collector's LangSmith exporter: OTLP/HTTP protobuf to ``$LANGSMITH_ENDPOINT/otel/v1/traces`` with the
key and project headers when LANGSMITH_API_KEY is set, and nothing at all when it is not.

LangSmith itself is unreachable from here; ``OtlpHttpReceiver`` stands in for it and checks its documented
wire format (path, content type, headers)."""

from __future__ import annotations

import pytest

from otel_llm import semconv
from tests.support.otlp_receiver import PROTOBUF, TRACES_PATH, OtlpHttpReceiver
from tests.support.poll import poll
from tests.support.senders import sdk_tracer_provider, unique_service
from tests.support.stack import TEST_LANGSMITH_API_KEY, TEST_LANGSMITH_PROJECT, start_stack

BEDROCK_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def _attributes(span) -> dict:
    return {attribute.key: attribute.value.string_value for attribute in span.attributes}


def _send_parent_and_llm_child(otlp_grpc_endpoint: str, service: str) -> None:
    provider = sdk_tracer_provider(otlp_grpc_endpoint, service)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /chat"):
        with tracer.start_as_current_span("ChatBedrock") as llm:
            llm.set_attribute(semconv.GEN_AI_SYSTEM, "anthropic")
            llm.set_attribute(semconv.GEN_AI_REQUEST_MODEL, BEDROCK_CLAUDE)
    provider.shutdown()


def test_langsmith_receives_whole_trace_with_key_and_project_headers(stack):
    """Both spans of a trace are posted as protobuf to /otel/v1/traces with the key and project headers."""
    service = unique_service("langsmith-export")
    _send_parent_and_llm_child(stack.otlp_grpc_endpoint, service)

    spans = poll(lambda: len(found := stack.langsmith_receiver.spans(service)) == 2 and found,
                 timeout=60, message="2 spans at LangSmith")
    for received in stack.langsmith_receiver.requests:
        assert received.path == TRACES_PATH
        assert received.headers["content-type"] == PROTOBUF
        assert received.headers["x-api-key"] == TEST_LANGSMITH_API_KEY
        assert received.headers["langsmith-project"] == TEST_LANGSMITH_PROJECT
    by_name = {span.name: span for span in spans}
    assert by_name["ChatBedrock"].parent_span_id == by_name["POST /chat"].span_id
    assert _attributes(by_name["ChatBedrock"])[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"


@pytest.fixture()
def keyless_collector(stack, tmp_path):
    """A second collector with LANGSMITH_API_KEY empty, exporting to the session stack's Jaeger."""
    receiver = OtlpHttpReceiver()
    collector = start_stack(tmp_path, langsmith_endpoint=receiver.base_url, langsmith_api_key="",
                            components=("collector",),
                            overrides={"OTEL_LLM_JAEGER_OTLP_GRPC_PORT": stack.runner.env[
                                "OTEL_LLM_JAEGER_OTLP_GRPC_PORT"]})
    try:
        yield collector, receiver
    finally:
        collector.down()
        receiver.close()


def test_nothing_is_posted_to_langsmith_without_a_key(stack, keyless_collector):
    """With no key the collector still exports to Jaeger, and has posted nothing to LangSmith at its stop."""
    collector, receiver = keyless_collector
    service = unique_service("langsmith-no-key")
    _send_parent_and_llm_child(collector.otlp_grpc_endpoint, service)

    poll(lambda: stack.find_traces(service), timeout=60, message="the trace in Jaeger (the collector ran it)")
    collector.down()  # a graceful stop flushes every pipeline, so anything queued for LangSmith would go now
    assert receiver.requests == []
