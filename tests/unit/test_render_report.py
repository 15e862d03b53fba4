"""The demo's report (otel_llm.cli.demo.print_report): trees, requests, summary, endpoints; text and JSON."""

from __future__ import annotations

import json
from types import SimpleNamespace

from otel_llm import semconv
from otel_llm.cli.demo import ANSWER_PREVIEW_CHARS, print_report, request_rows
from otel_llm.traces import Span, group_traces

LLM_ATTRIBUTES = {
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 3,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
}
TRACES = group_traces(
    [
        Span("t1", "root", None, "POST /api/v1/chat", "chat-api", 0, 5_000, {}, False),
        Span("t1", "llm", "root", "chat gpt-4o-mini", "chat-worker", 10, 1_000, LLM_ATTRIBUTES, False),
    ]
)


def test_request_rows_read_results_defensively():
    """Missing fields print "-", answers are one line and capped."""
    long_answer = "word " * 100
    rows = request_rows(
        [SimpleNamespace(job_id="j1", provider="openai", model="m", answer=long_answer), object()]
    )
    assert rows[0][:3] == ["j1", "openai", "m"]
    assert len(rows[0][3]) == ANSWER_PREVIEW_CHARS and rows[0][3].endswith("...") and "\n" not in rows[0][3]
    assert rows[1] == ["-", "-", "-", "-"]


def test_text_report_has_trees_requests_summary_and_endpoints(capsys):
    """The text report prints the header, each tree, the requests, the summary, then the endpoints."""
    results = [SimpleNamespace(job_id="j1", provider="openai", model="gpt-4o-mini", answer="hi")]
    print_report(TRACES, results, False, "1 trace", {"Jaeger query API": "http://127.0.0.1:1"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 trace"
    assert lines[2].startswith("trace t1  chat-api -> chat-worker")
    assert "Requests" in lines and "LLM calls per provider/model" in lines
    summary_row = lines[lines.index("LLM calls per provider/model") + 3].split()
    assert summary_row[:4] == ["openai", "gpt-4o-mini", "1", "0"]
    assert lines[-1].split() == ["Jaeger", "query", "API", "http://127.0.0.1:1"]


def test_json_report_is_one_document(capsys):
    """--json gives traces with trees, requests, summary lines and endpoints in one document."""
    print_report(TRACES, [], True, "ignored", {"Prometheus": "http://127.0.0.1:2"})
    document = json.loads(capsys.readouterr().out)
    [trace] = document["traces"]
    assert trace["trace_id"] == "t1" and trace["llm_calls"] == 1 and trace["tree"][0].startswith("trace t1")
    assert document["requests"] == [] and document["summary"][0]["provider"] == "openai"
    assert document["summary"][0]["calls"] == 1 and trace["spans"][0]["span_id"] in {
        span.span_id for span in TRACES[0].spans
    }
    assert document["endpoints"] == {"Prometheus": "http://127.0.0.1:2"}
