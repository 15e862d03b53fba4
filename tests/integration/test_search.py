"""otel-llm search against the real collector and Jaeger of the stack fixture, every filter, table and JSON.

The traces are reference-shaped (API SERVER span -> PRODUCER -> worker CONSUMER -> LangGraph nodes -> LLM
spans with LangSmith's attributes) and sent with the SDK through the collector, so Jaeger holds what the
collector's normalisation made of them: the Bedrock call only says ``gen_ai.system=anthropic`` with a Bedrock
model id and must be found as ``aws.bedrock``. Service names are unique per run so other tests' traces in the
shared Jaeger never match the exact assertions.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_llm import semconv
from otel_llm.cli.search import EXIT_ERROR, JAEGER_URL_ENV
from tests.support.poll import poll

# The console script users run (installed with the package next to this interpreter).
OTEL_LLM = os.path.join(os.path.dirname(sys.executable), "otel-llm")
pytestmark = pytest.mark.integration

BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SLOW_TRACE_SECONDS = 3
SPANS_PER_TRACE = 8  # request, producer, consumer, graph, 2 nodes, 2 LLM calls


@dataclass(frozen=True)
class SentTraces:
    api_service: str
    worker_service: str
    openai_trace: str  # fast, arm "openai", intent "waste" (run tag + metadata)
    bedrock_trace: str  # 3 s long, arm "bedrock", intent "general" (run tag only)


def send_request(
    api, worker, *, provider_attrs: dict, model: str, arm: str, intent_attrs: dict, duration_ns: int
) -> str:
    """One reference-shaped request starting ``duration_ns`` ago; returns its trace id.

    Each span starts 1 ms after the previous one from the request's start, as in a real request, so the
    trace's start and its latest span agree on which of two traces is newer.
    """
    start_times = itertools.count(time.time_ns() - duration_ns, 1_000_000)
    arm_attrs = {semconv.EXPERIMENT_ARM: arm}
    graph_attrs = {semconv.LANGSMITH_SPAN_KIND: "chain", **intent_attrs, **arm_attrs}
    llm_attrs = {
        **arm_attrs,
        **{key: value for key, value in intent_attrs.items() if key == semconv.LANGSMITH_INTENT},
        semconv.LANGSMITH_SPAN_KIND: "llm",
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 20,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 8,
        **provider_attrs,
    }

    def span(tracer, name: str, kind=trace_api.SpanKind.INTERNAL, attributes=arm_attrs):
        return tracer.start_as_current_span(
            name, kind=kind, attributes=attributes, start_time=next(start_times)
        )

    with span(api, "POST /api/v1/chat", trace_api.SpanKind.SERVER) as root:
        with span(api, "chat send", trace_api.SpanKind.PRODUCER):
            with span(worker, "chat process", trace_api.SpanKind.CONSUMER):
                with span(worker, "LangGraph", attributes=graph_attrs):
                    for node in ("intent", "general"):
                        with span(worker, node, attributes={**graph_attrs, semconv.LANGGRAPH_NODE: node}):
                            with span(worker, f"chat {model}", trace_api.SpanKind.CLIENT, llm_attrs):
                                pass
    return format(root.get_span_context().trace_id, "032x")


@pytest.fixture(scope="module")
def sent(stack) -> SentTraces:
    run = uuid.uuid4().hex[:8]
    services = (f"search-api-{run}", f"search-worker-{run}")
    providers = []
    for service in services:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=stack.otlp_grpc_endpoint, insecure=True))
        )
        providers.append(provider)
    api, worker = (provider.get_tracer("tests.search") for provider in providers)
    openai_trace = send_request(
        api,
        worker,
        provider_attrs={semconv.GEN_AI_SYSTEM: "openai", semconv.LANGSMITH_LS_PROVIDER: "openai"},
        model="gpt-4o-mini",
        arm="openai",
        intent_attrs={semconv.LANGSMITH_SPAN_TAGS: "chat, intent:waste", semconv.LANGSMITH_INTENT: "waste"},
        duration_ns=50_000_000,
    )
    bedrock_trace = send_request(
        api,
        worker,
        provider_attrs={semconv.GEN_AI_SYSTEM: "anthropic"},
        model=BEDROCK_MODEL,
        arm="bedrock",
        intent_attrs={semconv.LANGSMITH_SPAN_TAGS: "intent:general"},
        duration_ns=SLOW_TRACE_SECONDS * 1_000_000_000,
    )
    for provider in providers:
        provider.shutdown()
    for trace_id in (openai_trace, bedrock_trace):
        poll(
            lambda trace_id=trace_id: (
                len((stack.get_trace(trace_id) or {}).get("spans", [])) == SPANS_PER_TRACE
            ),
            timeout=60,
            message=f"trace {trace_id} complete in Jaeger",
        )
    return SentTraces(*services, openai_trace, bedrock_trace)


def search(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, JAEGER_URL_ENV: stack.jaeger_query_url}
    return subprocess.run(
        [OTEL_LLM, "search", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def found_ids(stack, *args: str) -> set[str]:
    result = search(stack, "--json", "--limit", "100", *args)
    if result.returncode == EXIT_ERROR:
        return set()
    assert result.returncode == 0, result.stderr
    return {trace["trace_id"] for trace in json.loads(result.stdout)}


def test_table_lists_the_service_traces_with_every_column(stack, sent):
    """A service's traces as rows: id, start, root, duration, provider/model, calls, tokens, error."""
    result = search(stack, "--service", sent.api_service)
    assert result.returncode == 0, result.stderr
    header, _, *rows = result.stdout.splitlines()
    assert header.split("  ")[0] == "TRACE ID" and "PROVIDER/MODEL" in header and header.endswith("ERROR")
    # Newest start first: the Bedrock request started 3 s before it ended, so before the OpenAI one.
    assert [row.split()[0] for row in rows] == [sent.openai_trace, sent.bedrock_trace]
    bedrock_row = rows[1]
    assert f"{sent.api_service}: POST /api/v1/chat" in bedrock_row
    assert f"aws.bedrock/{BEDROCK_MODEL}" in bedrock_row and "3.0" in bedrock_row
    assert bedrock_row.split()[-3:] == ["2", "56", "no"]


def test_json_holds_the_trace_summary(stack, sent):
    """--json gives one object per trace with services, providers, models, calls and tokens."""
    result = search(stack, "--json", "--service", sent.worker_service, "--provider", "openai")
    assert result.returncode == 0, result.stderr
    [summary] = json.loads(result.stdout)
    assert summary["trace_id"] == sent.openai_trace
    assert summary["root_service"] == sent.api_service and summary["root_operation"] == "POST /api/v1/chat"
    assert summary["services"] == [sent.api_service, sent.worker_service]
    assert summary["providers"] == ["openai"] and summary["models"] == ["gpt-4o-mini"]
    assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == (2, 40, 16)
    assert summary["spans"] == SPANS_PER_TRACE and summary["error"] is False


@pytest.mark.parametrize("scope", ["service", "all-services"])
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (("--provider", "openai"), {"openai_trace"}),
        (("--provider", "bedrock"), {"bedrock_trace"}),  # alias; the collector wrote aws.bedrock
        (("--model", BEDROCK_MODEL), {"bedrock_trace"}),
        (("--arm", "openai"), {"openai_trace"}),
        (("--intent", "waste"), {"openai_trace"}),  # metadata intent
        (("--min-duration", f"{SLOW_TRACE_SECONDS - 1}s"), {"bedrock_trace"}),
        (("--provider", "aws.bedrock", "--min-duration", "1s"), {"bedrock_trace"}),
        (("--provider", "openai", "--min-duration", "1s"), set()),
    ],
)
def test_each_filter_selects_the_matching_trace(stack, sent, scope, filters, expected):
    """Each filter finds exactly the sent traces it describes, with and without --service."""
    scope_args = ("--service", sent.worker_service) if scope == "service" else ()
    ours = {sent.openai_trace, sent.bedrock_trace}
    assert found_ids(stack, *scope_args, *filters) & ours == {getattr(sent, name) for name in expected}


def test_intent_from_the_run_tag_is_found_within_a_service(stack, sent):
    """A trace whose intent is only an intent:<x> run tag is found when its service is named."""
    assert found_ids(stack, "--service", sent.api_service, "--intent", "general") == {sent.bedrock_trace}


def test_limit_keeps_the_newest_and_lookback_excludes_older(stack, sent):
    """--limit 1 gives the newest trace; a lookback shorter than the traces' age finds nothing (exit 2)."""
    assert found_ids(stack, "--service", sent.api_service, "--limit", "1") == {sent.openai_trace}
    result = search(stack, "--service", sent.api_service, "--lookback", "1us")
    assert result.returncode == EXIT_ERROR and result.stdout == ""
    assert result.stderr.startswith("otel-llm search: no trace matched --service") and "1us" in result.stderr


def test_nothing_found_is_one_line_and_exit_2(stack, sent):
    """A provider nobody called gives exit 2 and one stderr line."""
    result = search(stack, "--provider", "cohere")
    assert result.returncode == EXIT_ERROR and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no trace matched --provider cohere" in result.stderr
