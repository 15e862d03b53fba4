"""The secret corpus: every planted secret, through every path it takes out of an app (run metadata, a
provider's error message and exception event, LANGSMITH_* variables copied by langsmith in OTel mode, URLs,
METRIC lines, the process's own log output), is absent from what Jaeger, the LangSmith receiver and the
METRIC file receive.

Controls: with OTEL_LLM_REDACT=false and no collector in between, every secret does arrive (so the absence
above is the redaction's doing); with otel-llm off (plain SDK, a service without otel-llm) the collector's
``transform/redact`` alone keeps them out of Jaeger and LangSmith.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otel_llm import redaction, semconv
from otel_llm.traces import from_jaeger
from tests.support.otlp_http_sink import OtlpHttpSink
from tests.support.poll import poll
from tests.support.queries import spans_of
from tests.support.senders import unique_service

ROOT = Path(__file__).resolve().parents[2]
APP_SPANS = 2  # the request span and the LLM span, with langsmith's own spans on top


def _corpus() -> dict[str, str]:
    """Fresh secrets per run (nothing from an earlier run can pass a check), by the variable carrying them."""
    tag = uuid.uuid4().hex[:12]
    return {
        "SECRET_OPENAI": f"sk-proj-{tag}OpenAiKey0",  # provider error: status, exception.message, stacktrace
        "SECRET_METADATA": f"meta{tag}",  # run metadata api_key: matched by its key only
        "SECRET_PASSWORD": f"pw{tag}",  # URL user-info
        "SECRET_QUERY": f"q{tag}",  # ?api_key=
        "SECRET_AWS_KEY_ID": "AKIA" + tag.upper().ljust(16, "Z")[:16],  # url.path: the METRIC line
        "SECRET_ENDPOINT": f"ep{tag}",  # LANGSMITH_ENDPOINT user-info, copied by langsmith
        "SECRET_ANTHROPIC": f"sk-ant-api03-{tag}",  # a LANGSMITH_* variable not named like a secret
    }


def _run_app(endpoint: str, metric_file: Path, service: str, corpus: dict[str, str], **variables: str) -> str:
    """Runs the secret app; returns its stderr (the process's log output)."""
    env = {
        **os.environ, **corpus, **variables,
        "LANGSMITH_TRACING": "true", "LANGSMITH_TRACING_MODE": "otel", "LANGSMITH_API_KEY": "",
        "LANGSMITH_ENDPOINT": f"http://ls:{corpus['SECRET_ENDPOINT']}@127.0.0.1:9",
        "LANGSMITH_FALLBACK_CREDS": corpus["SECRET_ANTHROPIC"],
        "OTEL_LLM_ROLLUP_WINDOW_MS": "0", "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    done = subprocess.run([sys.executable, "-m", "tests.integration.apps.secret_app", endpoint,
                           str(metric_file), service], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _app_span_count(traces) -> int:
    """Spans of the app in Jaeger: without the collector's llm.request span, which the LangSmith pipeline
    does not add (collector/config.yaml, llm_rollup/langsmith)."""
    return sum(span.name != semconv.REQUEST_SPAN_NAME for span in spans_of(traces))


def _jaeger_spans(answer: dict) -> int:
    return len(spans_of(from_jaeger(answer)))


def _leaked(text: str, corpus: dict[str, str]) -> list[str]:
    return [name for name, secret in corpus.items() if secret in text]


@pytest.fixture()
def corpus() -> dict[str, str]:
    return _corpus()


def test_no_secret_reaches_jaeger_langsmith_the_metric_file_or_the_logs(stack, tmp_path, corpus):
    """With otel-llm's defaults, none of the planted secrets is in any of the four outputs; markers are."""
    service, metric_file = unique_service("redaction"), tmp_path / "metric.log"
    logs = _run_app(stack.otlp_grpc_endpoint, metric_file, service, corpus)

    answer = poll(lambda: (found := stack.jaeger_answer(service)) and _jaeger_spans(found) > APP_SPANS
                  and found, timeout=60, message="the request's trace in Jaeger")
    count = _app_span_count(from_jaeger(answer))
    langsmith = poll(lambda: len(found := stack.langsmith_receiver.spans(service)) == count and found,
                     timeout=60, message="the same spans at LangSmith")
    jaeger_text, langsmith_text = json.dumps(answer), "\n".join(str(span) for span in langsmith)
    metric_text = metric_file.read_text()

    assert {"jaeger": _leaked(jaeger_text, corpus), "langsmith": _leaked(langsmith_text, corpus),
            "metric": _leaked(metric_text, corpus), "logs": _leaked(logs, corpus)} == \
        {"jaeger": [], "langsmith": [], "metric": [], "logs": []}
    assert redaction.MARKER in jaeger_text and redaction.MARKER in langsmith_text
    assert "event=request" in metric_text and redaction.MARKER in metric_text  # the path's key id


def test_control_without_redaction_every_secret_is_exported(tmp_path, corpus):
    """OTEL_LLM_REDACT=false straight to an OTLP receiver: every planted secret arrives, the key id in METRIC
    lines."""
    sink, service, metric_file = OtlpHttpSink(), unique_service("redaction-off"), tmp_path / "metric.log"
    try:
        _run_app(sink.endpoint, metric_file, service, corpus, OTEL_LLM_REDACT="false")
        spans = poll(lambda: len(found := sink.spans()) > APP_SPANS and found, timeout=30,
                     message="the spans at the receiver")
    finally:
        sink.close()
    exported = "\n".join(str(span) for _, span in spans)
    assert _leaked(exported, corpus) == list(corpus)
    assert corpus["SECRET_AWS_KEY_ID"] in metric_file.read_text()


def test_the_collector_redacts_spans_of_a_service_without_otel_llm(stack, tmp_path, corpus):
    """OTEL_LLM_ENABLED=false (plain SDK): transform/redact alone keeps every secret out of Jaeger and
    LangSmith. (Its METRIC lines are the app's own file, outside the collector: they keep the key id.)"""
    service = unique_service("redaction-plain-sdk")
    _run_app(stack.otlp_grpc_endpoint, tmp_path / "metric.log", service, corpus, OTEL_LLM_ENABLED="false")

    answer = poll(lambda: (found := stack.jaeger_answer(service)) and _jaeger_spans(found) > APP_SPANS
                  and found, timeout=60, message="the request's trace in Jaeger")
    traces = from_jaeger(answer)
    count = _app_span_count(traces)
    langsmith = poll(lambda: len(found := stack.langsmith_receiver.spans(service)) == count and found,
                     timeout=60, message="the same spans at LangSmith")
    assert _leaked(json.dumps(answer), corpus) == []
    assert _leaked("\n".join(str(span) for span in langsmith), corpus) == []
    request, = (span.attributes for span in spans_of(traces) if span.name == "POST /api/v1/chat")
    marker = redaction.MARKER  # the kept prefixes ($1 in OTTL) survive the collector's config expansion
    assert request["url.full"] == f"https://{marker}@api.example.com/api/v1/chat?api_key={marker}"
