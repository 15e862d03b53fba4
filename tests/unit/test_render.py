"""otel_llm.cli.render: trace trees, the per-provider/model summary and the search table."""

from __future__ import annotations

import pytest

from otel_llm import semconv
from otel_llm.cli.render import format_duration, percentile, render_summary, render_trace_table, render_tree
from otel_llm.traces import Span, group_traces

BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def llm(
    span_id: str,
    parent: str,
    provider: str,
    model: str,
    duration_us: int,
    trace_id: str = "t1",
    error: bool = False,
) -> Span:
    attributes = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 10,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
    }
    return Span(
        trace_id,
        span_id,
        parent,
        f"chat {model}",
        "chat-worker",
        1_000 + duration_us,
        duration_us,
        attributes,
        error,
    )


def node(span_id: str, parent: str, name: str, start: int) -> Span:
    return Span("t1", span_id, parent, name, "chat-worker", start, 100, {semconv.LANGGRAPH_NODE: name}, False)


@pytest.fixture
def trace():
    [only] = group_traces(
        [
            Span("t1", "api", None, "POST /api/v1/chat", "chat-api", 0, 2_000_000, {}, False),
            Span("t1", "consume", "api", "chat process", "chat-worker", 10, 1_500_000, {}, False),
            node("intent", "consume", "intent", 20),
            llm("l1", "intent", "openai", "gpt-4o-mini", 120_000),
            node("general", "consume", "general", 30),
            llm("l2", "general", "aws.bedrock", BEDROCK_MODEL, 300_000, error=True),
        ]
    )
    return only


def test_tree_draws_services_nodes_and_llm_calls(trace):
    """The tree shows the service where it changes, node spans, provider/model, durations and tokens."""
    lines = render_tree(trace)
    assert lines[0].startswith("trace t1  chat-api -> chat-worker  2.00 s  2 LLM calls  tokens 20 in / 8 out")
    assert lines[0].endswith("ERROR")
    assert lines[1] == "POST /api/v1/chat  [chat-api]  2.00 s"
    assert lines[2] == "└── chat process  [chat-worker]  1.50 s"
    assert lines[3] == "    ├── intent  (node)  0.10 ms"
    assert lines[4] == "    │   └── LLM openai/gpt-4o-mini  120 ms  tokens 10 in / 4 out"
    assert lines[5] == "    └── general  (node)  0.10 ms"
    assert lines[6] == f"        └── LLM aws.bedrock/{BEDROCK_MODEL}  300 ms  tokens 10 in / 4 out  ERROR"
    assert len(lines) == 7


def test_summary_has_one_row_per_provider_and_model_with_percentiles():
    """Calls, errors, p50/p95, token sums and the cost of the priced calls are per provider/model across
    traces."""
    spans = [
        llm(f"o{index}", "x", "openai", "gpt-4o-mini", duration, trace_id=f"t{index}")
        for index, duration in enumerate([10_000, 20_000, 30_000, 40_000])
    ]
    spans.append(llm("b", "x", "aws.bedrock", BEDROCK_MODEL, 500_000, trace_id="t9", error=True))
    for span in spans[:3]:  # three of the OpenAI calls priced
        span.attributes.update({semconv.COST_AMOUNT: 0.00025, semconv.COST_CURRENCY: "USD"})
    lines = render_summary(group_traces(spans))
    assert lines[0].split() == [
        "PROVIDER",
        "MODEL",
        "CALLS",
        "ERRORS",
        "P50",
        "P95",
        "TOKENS",
        "IN",
        "TOKENS",
        "OUT",
        "COST",
    ]
    assert lines[2].split() == ["aws.bedrock", BEDROCK_MODEL, "1", "1", "500", "ms", "500", "ms", "10", "4",
                                "-"]
    assert lines[3].split() == ["openai", "gpt-4o-mini", "4", "0", "20.0", "ms", "40.0", "ms", "40", "16",
                                "0.000750", "USD"]


def test_summary_of_traces_without_llm_calls_is_just_the_header():
    """No LLM calls gives the header and rule only."""
    assert len(render_summary([])) == 2


def test_trace_table_row_holds_the_search_columns(trace):
    """A row has id, UTC start, service: root operation, duration, provider/model, calls, tokens, error."""
    header, _, row = render_trace_table([trace])
    assert header.split()[:3] == ["TRACE", "ID", "START"]
    assert row.split("  ")[0] == "t1"
    cells = [cell.strip() for cell in row.split("  ") if cell.strip()]
    assert cells == [
        "t1",
        "1970-01-01 00:00:00",
        "chat-api: POST /api/v1/chat",
        "2.00 s",
        f"aws.bedrock/{BEDROCK_MODEL}, openai/gpt-4o-mini",
        "2",
        "28",
        "yes",
    ]


@pytest.mark.parametrize(
    ("microseconds", "text"),
    [(420, "0.42 ms"), (12_345, "12.3 ms"), (512_000, "512 ms"), (1_240_000, "1.24 s")],
)
def test_durations_are_printed_for_people(microseconds, text):
    """Sub-10 ms with two decimals, sub-100 ms with one, then whole ms, then seconds."""
    assert format_duration(microseconds) == text


def test_percentile_is_nearest_rank():
    """p50 of 1..4 is 2 and p95 is 4; one value is its own percentile."""
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile([4, 1, 3, 2], 95) == 4
    assert percentile([7], 95) == 7


def test_runs_of_identical_leaf_siblings_are_one_line():
    """Three or more consecutive same-name leaves (XADD per token) become one line with count and total."""
    spans = [Span("t1", "root", None, "answer", "chat-worker", 0, 10_000, {}, False)]
    spans += [
        Span("t1", f"x{index}", "root", "XADD", "chat-worker", 10 + index, 500, {}, False)
        for index in range(4)
    ]
    spans += [Span("t1", "y0", "root", "EXPIRE", "chat-worker", 100, 300, {}, False)]
    spans += [
        Span("t1", f"z{index}", "root", "XACK", "chat-worker", 200 + index, 100, {}, False)
        for index in range(2)
    ]
    [trace] = group_traces(spans)
    assert render_tree(trace)[1:] == [
        "answer  [chat-worker]  10.0 ms",
        "├── XADD  ×4  2.00 ms in total",
        "├── EXPIRE  0.30 ms",
        "├── XACK  0.10 ms",
        "└── XACK  0.10 ms",
    ]


def test_entry_spans_of_a_service_show_the_assigned_arm_and_the_rollup():
    """An entry span line shows the experiment arm and the roll-up; nodes below do not repeat them."""
    arm = {semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini"}
    rollup = {
        **arm,
        semconv.ROLLUP_PROVIDER: "openai",
        semconv.ROLLUP_MODEL: "gpt-4o-mini",
        semconv.ROLLUP_CALLS: 2,
    }
    [only] = group_traces(
        [
            Span("t1", "api", None, "POST /api/v1/chat", "chat-api", 0, 2_000_000, arm, False),
            Span("t1", "consume", "api", "chat process", "chat-worker", 10, 1_500_000, rollup, False),
            Span("t1", "intent", "consume", "intent", "chat-worker", 20, 100,
                 {**rollup, semconv.LANGGRAPH_NODE: "intent"}, False),
        ]
    )
    lines = render_tree(only)
    assert lines[1] == "POST /api/v1/chat  [chat-api]  2.00 s  arm openai:gpt-4o-mini"
    assert lines[2] == (
        "└── chat process  [chat-worker]  1.50 s  arm openai:gpt-4o-mini  rollup openai/gpt-4o-mini (2 calls)"
    )
    assert lines[3] == "    └── intent  (node)  0.10 ms"
