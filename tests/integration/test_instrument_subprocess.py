"""A FastAPI app under ``opentelemetry-instrument``, configured by environment variables only.

The app (tests/integration/apps/llm_app.py) runs in a subprocess exporting OTLP/HTTP to a receiver in this
test (tests/support/otlp_http_sink.py) and to the console. No stack needed: this checks what the distro and
the configurator entry points install, end to end through real HTTP requests, and that the standard
variables it sets (service name, resource attributes, traces and metrics exporters incl. console, OTLP
endpoint and protocol, sampler and its argument) take effect under the launcher.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from otel_llm import semconv
from otel_llm.metrics.views import GENAI_METRIC_VIEWS
from tests.support.otlp_http_sink import OtlpHttpSink, attributes_of
from tests.support.poll import poll

REPO = Path(__file__).resolve().parents[2]
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
SERVICE = "llm-app-test"
SPAN_KIND_SERVER = 2
BAD_VARIABLE = "OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH"
# The example of a malformed arms value: a model with "/" instead of "provider:model".
BAD_ARMS = "openai/gpt-4o-mini"
# OTEL_TRACES_SAMPLER=traceidratio, _ARG=0.5: a trace is sampled when its id's low 64 bits are below half
# their range, whatever the caller's sampled flag says. The client picks the trace ids: the outcome is known.
SAMPLED_TRACE_IDS = [f"{0:016x}{index + 1:016x}" for index in range(3)]
UNSAMPLED_TRACE_ID = "0123456789abcdef" + "f" * 16


def traceparent(trace_id: str) -> str:
    """A W3C traceparent whose flag says sampled (the SDK's default parent-based sampler would follow it)."""
    return f"00-{trace_id}-00000000000000a1-01"


@dataclass
class RunningApp:
    sink: OtlpHttpSink
    stdout: Path
    stderr: Path
    responses: list[httpx.Response]

    def server_span(self, name: str) -> dict:
        """Attributes of the first SERVER span called ``name`` once it carries a roll-up."""
        def probe():
            for _, span in self.sink.spans():
                attributes = attributes_of(span.attributes)
                if span.name == name and span.kind == SPAN_KIND_SERVER and semconv.ROLLUP_CALLS in attributes:
                    return attributes
            return None

        return poll(probe, timeout=30, interval=0.2, message=f"rolled-up SERVER span {name}")

    def span(self, name: str) -> tuple[dict, dict]:
        """(resource attributes, span attributes) of the first span called ``name``."""
        def probe():
            return next(((resource, attributes_of(span.attributes)) for resource, span in self.sink.spans()
                         if span.name == name), None)

        return poll(probe, timeout=30, interval=0.2, message=f"span {name}")

    def metric(self, name: str, probe_ok) -> list[tuple[dict, dict, object]]:
        """The data points of metric ``name`` once ``probe_ok(points)`` holds."""
        return poll(lambda: (points := self.sink.metric_points(name)) and probe_ok(points) and points,
                    timeout=30, interval=0.2, message=f"metric {name}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[RunningApp]:
    sink = OtlpHttpSink()
    port = _free_port()
    logs = tmp_path_factory.mktemp("llm_app")
    stdout, stderr = logs / "stdout.txt", logs / "stderr.txt"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "LANGSMITH_"))}
    env.update({
        "PYTHONPATH": str(REPO),
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "OTEL_TRACES_EXPORTER": "otlp,console",
        "OTEL_METRICS_EXPORTER": "otlp,console",
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_LLM_ROLLUP_WINDOW_MS": "1000",
        BAD_VARIABLE: "lots",
        "OTEL_LLM_EXPERIMENT_ARMS": BAD_ARMS,
    })
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [str(INSTRUMENT), sys.executable, "-m", "tests.integration.apps.llm_app", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: process.poll() is None and httpx.get(f"{base}/openapi.json").status_code == 200,
             timeout=60, interval=0.2, message="app serving")
        # Untrusted baggage from the client: the edge propagator must drop it. The first request's trace id is
        # above the sampling ratio: none of its spans may be exported, so it is sent before the others.
        headers = {"baggage": "session.id=evil,llm.experiment.arm=forged"}
        unsampled = httpx.post(f"{base}/chat",
                               headers={**headers, "traceparent": traceparent(UNSAMPLED_TRACE_ID)})
        paths = ("/chat", "/chat", "/chat-late")
        responses = [httpx.post(f"{base}{path}", headers={**headers, "traceparent": traceparent(trace_id)})
                     for path, trace_id in zip(paths, SAMPLED_TRACE_IDS, strict=True)]
        yield RunningApp(sink, stdout, stderr, [unsampled, *responses])
    finally:
        process.terminate()
        process.wait(timeout=30)
        sink.close()


def test_app_serves_despite_a_bad_otel_llm_variable(app):
    """A bad OTEL_LLM_* value gives exactly one warning naming it, and every request succeeds."""
    assert [response.status_code for response in app.responses] == [200, 200, 200, 200]
    app.server_span("POST /chat")  # telemetry is flowing by now, so startup logging is complete
    warnings = [line for line in app.stderr.read_text().splitlines() if BAD_VARIABLE in line]
    assert len(warnings) == 1, app.stderr.read_text()


def test_malformed_experiment_arms_warn_once_with_no_app_code(app):
    """OTEL_LLM_EXPERIMENT_ARMS set wrong, read by nothing but the launcher's configurator: one warning naming
    the variable, the value and the accepted form."""
    app.server_span("POST /chat")
    stderr = app.stderr.read_text()
    [warning] = [line for line in stderr.splitlines() if "OTEL_LLM_EXPERIMENT_ARMS" in line]
    assert repr(BAD_ARMS) in warning and "provider:model[=weight]" in warning


def test_server_span_carries_the_rollup(app):
    """The request's SERVER span says which provider and model served it, with call and token counts."""
    attributes = app.server_span("POST /chat")
    assert attributes[semconv.ROLLUP_PROVIDER] == "aws.bedrock"
    assert attributes[semconv.ROLLUP_MODEL] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert attributes[semconv.ROLLUP_CALLS] == 1
    assert attributes[semconv.ROLLUP_INPUT_TOKENS] == 120


def test_llm_span_made_after_the_request_is_rolled_up(app):
    """An LLM span made 0.25 s after the response (as langsmith does) still rolls up into the SERVER span."""
    attributes = app.server_span("POST /chat-late")
    assert attributes[semconv.ROLLUP_PROVIDER] == "openai"
    assert attributes[semconv.ROLLUP_MODEL] == "gpt-4o-mini"


def test_llm_span_gets_the_normalised_provider(app):
    """langsmith's gen_ai.system=anthropic guess is overridden: gen_ai.provider.name=aws.bedrock."""
    _, attributes = app.span("ChatBedrock")
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attributes[semconv.LANGGRAPH_NODE] == "answer"


def test_untrusted_incoming_baggage_is_dropped_and_app_baggage_kept(app):
    """The client's baggage never becomes attributes; the session id the app put in baggage does."""
    server = app.server_span("POST /chat")
    assert semconv.SESSION_ID not in server and semconv.EXPERIMENT_ARM not in server
    _, llm = app.span("ChatBedrock")
    assert llm[semconv.SESSION_ID] == "session-42"


def test_sampler_variables_apply(app):
    """OTEL_TRACES_SAMPLER=traceidratio with _ARG=0.5: a trace id above the ratio is dropped although its
    traceparent says sampled (the SDK default, parentbased_always_on, would keep it); ids below are kept."""
    app.server_span("POST /chat-late")  # the last request's rolled-up span: every earlier span was exported
    exported = {span.trace_id.hex() for _, span in app.sink.spans()}
    assert set(SAMPLED_TRACE_IDS) <= exported
    assert UNSAMPLED_TRACE_ID not in exported


def test_console_metrics_exporter_prints_the_genai_metrics(app):
    """OTEL_METRICS_EXPORTER=otlp,console: the console's copy of the metrics has the GenAI duration metric."""
    poll(lambda: f'"name": "{semconv.METRIC_OPERATION_DURATION}"' in app.stdout.read_text(), timeout=30,
         interval=0.2, message="console output with the GenAI duration metric")


def test_resource_comes_from_standard_variables(app):
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are on spans and metrics; the launcher version too."""
    resource, _ = app.span("ChatBedrock")
    assert resource["service.name"] == SERVICE
    assert resource["deployment.environment"] == "test"
    assert resource["telemetry.auto.version"]
    (metric_resource, _, _), *_ = app.metric(semconv.METRIC_OPERATION_DURATION, lambda points: True)
    assert metric_resource["service.name"] == SERVICE


def _max_count_by_provider(points) -> dict:
    counts: dict = {}
    for _, attributes, point in points:  # cumulative points: the largest count is the latest
        provider = attributes[semconv.GEN_AI_PROVIDER_NAME]
        counts[provider] = max(counts.get(provider, 0), point.count)
    return counts


def test_duration_metric_counts_each_call_once_with_allowlisted_attributes(app):
    """Three calls, two exporters: duration counts 2 Bedrock + 1 OpenAI, labels only from the allowlist."""
    points = app.metric(semconv.METRIC_OPERATION_DURATION,
                        lambda points: _max_count_by_provider(points).get("openai"))
    assert _max_count_by_provider(points) == {"aws.bedrock": 2, "openai": 1}
    allowed = GENAI_METRIC_VIEWS[semconv.METRIC_OPERATION_DURATION][1]
    for _, attributes, point in points:
        assert set(attributes) <= allowed, attributes
        assert list(point.explicit_bounds)[:2] == [0.01, 0.02]


def test_token_usage_metric_splits_input_and_output(app):
    """Token usage arrives per token type with the allowlisted attributes only (no session id)."""
    points = app.metric(semconv.METRIC_TOKEN_USAGE, lambda points: len(points) >= 4)
    allowed = GENAI_METRIC_VIEWS[semconv.METRIC_TOKEN_USAGE][1]
    assert {attributes[semconv.GEN_AI_TOKEN_TYPE] for _, attributes, _ in points} == {"input", "output"}
    assert all(set(attributes) <= allowed for _, attributes, _ in points)


def test_pipeline_health_metric_is_exported(app):
    """The dropped-span counter is exported (0 here: the large default queue never filled)."""
    points = app.metric("otel_llm.spans.dropped", lambda points: True)
    assert all(point.as_int == 0 for _, _, point in points)


def test_console_exporter_prints_rolled_up_spans(app):
    """OTEL_TRACES_EXPORTER=otlp,console: the console copy of the SERVER span carries the roll-up too."""
    app.server_span("POST /chat")
    poll(lambda: '"llm.rollup.provider": "aws.bedrock"' in app.stdout.read_text(), timeout=30, interval=0.2,
         message="console output with the roll-up")
