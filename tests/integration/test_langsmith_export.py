"""The collector's LangSmith exporter: OTLP/HTTP protobuf to ``$LANGSMITH_ENDPOINT/otel/v1/traces`` with the
key and project headers when LANGSMITH_API_KEY is set, nothing at all when it is not (or blank), and batches
that wait on disk through a LangSmith outage and a collector restart.

LangSmith itself is unreachable from here; ``OtlpHttpReceiver`` stands in for it and checks its documented
wire format (path, content type, headers)."""

from __future__ import annotations

import pytest

from otel_llm import semconv
from otel_llm.stack.run import free_ports
from tests.support.otlp_receiver import PROTOBUF, TRACES_PATH, OtlpHttpReceiver
from tests.support.poll import poll
from tests.support.senders import sdk_tracer_provider, unique_service
from tests.support.stack import TEST_LANGSMITH_API_KEY, TEST_LANGSMITH_PROJECT, start_stack

BEDROCK_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
LANGSMITH_EXPORTER = '"otelcol.component.id": "otlp_http/langsmith"'
RETRYING = "Will retry the request"


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


def _lone_collector(stack, state_dir, langsmith_endpoint: str, **kwargs):
    """A second collector in ``state_dir``, exporting to the session stack's Jaeger and to LangSmith at
    ``langsmith_endpoint``."""
    jaeger_port = "OTEL_LLM_STACK_JAEGER_OTLP_GRPC_PORT"
    return start_stack(state_dir, langsmith_endpoint=langsmith_endpoint, components=("collector",),
                       overrides={jaeger_port: stack.runner.env[jaeger_port]}, **kwargs)


@pytest.fixture()
def keyless_collector(stack, tmp_path):
    """A second collector whose LANGSMITH_API_KEY is blank (whitespace only), exporting to the stack's
    Jaeger."""
    receiver = OtlpHttpReceiver()
    collector = _lone_collector(stack, tmp_path, receiver.base_url, langsmith_api_key=" \t ")
    try:
        yield collector, receiver
    finally:
        collector.down()
        receiver.close()


def test_nothing_is_posted_to_langsmith_with_a_blank_key(stack, keyless_collector):
    """With a whitespace-only key (export off, as status says) the collector still exports to Jaeger, and has
    posted nothing to LangSmith at its stop."""
    collector, receiver = keyless_collector
    assert collector.status()["langsmith_export"] is False
    service = unique_service("langsmith-no-key")
    _send_parent_and_llm_child(collector.otlp_grpc_endpoint, service)

    poll(lambda: stack.find_traces(service), timeout=60, message="the trace in Jaeger (the collector ran it)")
    collector.down()  # a graceful stop flushes every pipeline, so anything queued for LangSmith would go now
    assert receiver.requests == []


def _langsmith_exporter_retrying(collector) -> bool:
    return any(LANGSMITH_EXPORTER in line and RETRYING in line
               for line in collector.tail("collector", 200).splitlines())


def test_batches_wait_on_disk_through_an_outage_and_a_collector_restart(stack, tmp_path):
    """Spans the collector could not deliver to LangSmith (unreachable) survive a collector restart and are
    posted, parent and child, once LangSmith answers."""
    service = unique_service("langsmith-outage")
    unreachable = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    receiver = OtlpHttpReceiver()
    collector = _lone_collector(stack, tmp_path, unreachable)
    try:
        _send_parent_and_llm_child(collector.otlp_grpc_endpoint, service)
        poll(lambda: _langsmith_exporter_retrying(collector), timeout=60,
             message="the LangSmith exporter retrying (collector log)")
        collector.down()
        collector = _lone_collector(stack, tmp_path, receiver.base_url)  # same state dir: same queue on disk
        spans = poll(lambda: len(found := receiver.spans(service)) == 2 and found, timeout=60,
                     message="both spans at LangSmith after the restart")
    finally:
        collector.down()
        receiver.close()
    by_name = {span.name: span for span in spans}
    assert by_name["ChatBedrock"].parent_span_id == by_name["POST /chat"].span_id
