"""otel-llm with the real third-party GenAI instrumentations, each app under ``opentelemetry-instrument``.

Each app (tests/integration/apps/interop_app.py) makes four real SDK calls through the real ``openai`` or
``boto3`` client to a fake provider on 127.0.0.1 (tests/support/fake_llm_provider.py: OpenAI chat completions
incl. streaming SSE and the Azure deployments path, Bedrock Converse, ConverseStream with its binary event
stream, InvokeModel), one call per FastAPI request, and exports OTLP/HTTP to a local sink. Configured by
environment variables only. For every app:

- the LLM span carries the right ``gen_ai.provider.name`` and ``gen_ai.request.model`` (for ``/langchain``
  the outer span: otel-llm's LangChain span around the SDK instrumentation's);
- the request's SERVER span carries the roll-up (provider, one call, an error call where the call failed);
- ``gen_ai.client.operation.duration`` counts each call exactly once over all producers, and the duration and
  ``gen_ai.client.token.usage`` points carry the right provider; the failed call is counted with
  ``error.type``.

A control run of each app with ``OTEL_LLM_ENABLED=false`` (plain SDK, same instrumentation) shows which of
these fail without otel-llm (``APPS[...].control_fails``); the checks otel-llm does not change for an
instrumentation are named in ``control_passes`` with the reason.

The three OpenAI instrumentations register the same entry-point name (``openai``), so opentelemetry-instrument
would load every one installed: each is installed with ``--no-deps`` (its dependencies are in the ``interop``
extra) into its own directory under ~/.cache/otel-llm/interop (once; pip's cache makes it ~1 s) and only that
one is put on the app's PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from otel_llm import semconv
from tests.support.fake_llm_provider import USAGE, FakeLLMProvider
from tests.support.otlp_http_sink import OtlpHttpSink, attributes_of

REPO = Path(__file__).resolve().parents[2]
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
OVERLAY_CACHE = Path.home() / ".cache" / "otel-llm" / "interop"
SPAN_KIND_SERVER = 2
RUN_TIMEOUT_S = 120
# The OpenAI instrumentations under test (their dependencies are pinned in pyproject.toml's interop extra).
INTEROP_OPENAI_PINS = {
    "openai-v2": "opentelemetry-instrumentation-openai-v2==2.4b0",
    "openllmetry": "opentelemetry-instrumentation-openai==0.62.4",
    "openinference": "openinference-instrumentation-openai==0.1.66",
}
OPENAI_MODEL = "gpt-4o-mini"
OPENAI_RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CHECKS = ("llm_span", "rollup", "metrics")


@dataclass(frozen=True)
class App:
    """One instrumentation's app: its client, what each call must look like, what the control shows."""

    client: str  # interop_app's argument: openai | bedrock
    overlay: str | None  # key of INTEROP_OPENAI_PINS, or None (botocore is in the main venv)
    calls: dict[str, tuple[str, str]]  # route -> (provider, model) expected on its LLM span
    error_route: str
    control_fails: tuple[str, ...]  # checks that fail without otel-llm
    control_passes: dict[str, str] = field(default_factory=dict)  # check -> why it passes without otel-llm
    failed_call_provider: bool = True  # the failed call's own duration point names its provider


OPENAI_CALLS = {"/chat": ("openai", OPENAI_MODEL), "/chat-stream": ("openai", OPENAI_MODEL),
                "/chat-error": ("openai", "missing-model"), "/azure": ("azure.ai.openai", OPENAI_MODEL),
                # otel-llm's LangChain span around the SDK's span: one call
                "/langchain": ("openai", OPENAI_MODEL)}
APPS = {
    "openai-v2": App("openai", "openai-v2", OPENAI_CALLS, "/chat-error", control_fails=CHECKS),
    "openllmetry": App(
        "openai", "openllmetry", OPENAI_CALLS, "/chat-error", control_fails=("rollup",),
        control_passes={"llm_span": "OpenLLMetry writes provider (Azure from the host) and model itself",
                        "metrics": "it records its own metrics once, with Azure from the host"},
        failed_call_provider=False),  # its error point carries error.type only
    "openinference": App(
        "openai", "openinference",
        {"/chat": ("openai", OPENAI_RESPONSE_MODEL), "/chat-stream": ("openai", OPENAI_RESPONSE_MODEL),
         "/chat-error": ("openai", semconv.UNKNOWN), "/azure": ("azure.ai.openai", OPENAI_RESPONSE_MODEL),
         "/langchain": ("openai", OPENAI_MODEL)},
        "/chat-error", control_fails=CHECKS),
    "botocore": App(
        "bedrock", None, {route: ("aws.bedrock", BEDROCK_MODEL) for route in ("/converse", "/converse-stream",
                                                                              "/invoke")}
        | {"/converse-error": ("aws.bedrock", "missing-model")},
        "/converse-error", control_fails=CHECKS),  # its spans and metrics say gen_ai.system only
}


@dataclass
class Run:
    """What one app run exported, read once after it exited."""

    returncode: int
    stdout: str
    stderr: str
    spans: list  # OTLP spans
    points: dict[tuple[str, str, frozenset], object]  # (scope, metric, attributes) -> the latest point

    def server_spans(self) -> dict[str, object]:
        return {span.name.removeprefix("POST "): span for span in self.spans if span.kind == SPAN_KIND_SERVER}

    def llm_span_under(self, server) -> dict | None:
        """Attributes of the LLM span under a SERVER span: its one child that is not an ASGI send span."""
        children = [span for span in self.spans if span.parent_span_id == server.span_id
                    and not span.name.endswith(" http send")]
        return attributes_of(children[0].attributes) if len(children) == 1 else None

    def metric(self, name: str) -> list[tuple[str, dict, object]]:
        return [(scope, dict(attributes), point) for (scope, metric, attributes), point in self.points.items()
                if metric == name]


def _overlay(name: str) -> Path:
    """A directory holding only that OpenAI instrumentation (no dependencies), installed once per version."""
    pin = INTEROP_OPENAI_PINS[name]
    target = OVERLAY_CACHE / re.sub(r"[^A-Za-z0-9_.-]", "_", pin)
    if not target.is_dir():
        OVERLAY_CACHE.mkdir(parents=True, exist_ok=True)
        staging = OVERLAY_CACHE / f".staging-{uuid.uuid4().hex}"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(staging),
                        pin], check=True, timeout=300)
        try:
            staging.rename(target)  # atomic: a parallel run that got there first wins
        except OSError:
            subprocess.run(["rm", "-rf", str(staging)], check=False)
    return target


def _latest_points(sink: OtlpHttpSink, name_prefixes: tuple[str, ...]) -> dict:
    """The last point of every series (cumulative temporality: the last export holds the totals)."""
    points: dict = {}
    for request in sink.metric_requests():
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if not metric.name.startswith(name_prefixes):
                        continue
                    data = getattr(metric, metric.WhichOneof("data"))
                    for point in data.data_points:
                        key = (scope_metrics.scope.name, metric.name,
                               frozenset(attributes_of(point.attributes).items()))
                        points[key] = point
    return points


def run_app(app: App, enabled: bool) -> Run:
    provider, sink = FakeLLMProvider(), OtlpHttpSink()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OTEL_", "LANGSMITH_", "AWS_", "OPENAI_", "AZURE_"))}
    paths = [str(_overlay(app.overlay))] if app.overlay else []
    env.update({
        "PYTHONPATH": os.pathsep.join([*paths, str(REPO)]),
        "FAKE_LLM_URL": provider.url,
        "OTEL_SERVICE_NAME": "interop-app",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_LLM_ENABLED": "true" if enabled else "false",
        # Not through the distro defaults, so the control run gets the same: the app flushes before it exits.
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_LLM_ROLLUP_WINDOW_MS": "200",
        # The SDK clients' own HTTP client spans are not what this test is about.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "httpx,httpx2",
    })
    try:
        result = subprocess.run(
            [str(INSTRUMENT), sys.executable, "-m", "tests.integration.apps.interop_app", app.client],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        # The app flushed both providers before exiting, and the sink answered each export before that.
        return Run(result.returncode, result.stdout, result.stderr, [span for _, span in sink.spans()],
                   _latest_points(sink, ("gen_ai.client.",)))
    finally:
        provider.close()
        sink.close()


@pytest.fixture(scope="module")
def runs():
    """Each (app, otel-llm on/off) is run once per module, on first use."""
    done: dict[tuple[str, bool], Run] = {}

    def get(name: str, enabled: bool) -> Run:
        if (name, enabled) not in done:
            done[name, enabled] = run_app(APPS[name], enabled)
        return done[name, enabled]

    return get


# --- the checks: each returns the problems found (empty when the app's telemetry is right) -----------------

def check_llm_span(app: App, run: Run) -> list[str]:
    problems = []
    for route, server in sorted(run.server_spans().items()):
        llm = run.llm_span_under(server)
        expected = app.calls.get(route)
        if llm is None or expected is None:
            problems.append(f"{route}: no single LLM span under the SERVER span")
            continue
        found = (llm.get(semconv.GEN_AI_PROVIDER_NAME), llm.get(semconv.GEN_AI_REQUEST_MODEL))
        if found != expected:
            problems.append(f"{route}: LLM span says {found}, expected {expected}")
    return problems


def check_rollup(app: App, run: Run) -> list[str]:
    problems = []
    for route, server in sorted(run.server_spans().items()):
        attributes = attributes_of(server.attributes)
        provider = app.calls[route][0]
        failed = route == app.error_route
        expected = {semconv.ROLLUP_PROVIDER: provider, semconv.ROLLUP_CALLS: 1,
                    semconv.ROLLUP_ERROR_CALLS: int(failed)}
        if not failed:
            expected[semconv.ROLLUP_INPUT_TOKENS] = USAGE["input"]
        found = {key: attributes.get(key) for key in expected}
        if found != expected:
            problems.append(f"{route}: SERVER span roll-up {found}, expected {expected}")
    return problems


def check_metrics(app: App, run: Run) -> list[str]:
    """Duration: exactly one recording per call over all producers, per provider; one failed call with
    error.type. Token usage: input tokens of the successful calls exactly once, per provider."""
    problems = []
    calls = Counter(provider for provider, _ in app.calls.values())
    durations = run.metric(semconv.METRIC_OPERATION_DURATION)
    by_provider = Counter()
    for _, attributes, point in durations:
        by_provider[attributes.get(semconv.GEN_AI_PROVIDER_NAME)] += point.count
    errors = sum(point.count for _, attributes, point in durations if semconv.ERROR_TYPE in attributes)
    if not app.failed_call_provider:  # its failed call's point names no provider: counted apart
        by_provider[app.calls[app.error_route][0]] += by_provider.pop(None, 0)
    if by_provider != calls:
        problems.append(f"duration counts per provider {dict(by_provider)}, expected {dict(calls)}")
    if errors != 1:
        problems.append(f"{errors} failed calls counted, expected 1")
    successful = calls - Counter([app.calls[app.error_route][0]])
    tokens = Counter()
    for _, attributes, point in run.metric(semconv.METRIC_TOKEN_USAGE):
        if attributes.get(semconv.GEN_AI_TOKEN_TYPE) == semconv.TOKEN_TYPE_INPUT:
            tokens[attributes.get(semconv.GEN_AI_PROVIDER_NAME)] += int(point.sum)
    expected_tokens = Counter({provider: count * USAGE["input"] for provider, count in successful.items()})
    if tokens != expected_tokens:
        problems.append(f"input tokens per provider {dict(tokens)}, expected {dict(expected_tokens)}")
    return problems


CHECK_FUNCTIONS = {"llm_span": check_llm_span, "rollup": check_rollup, "metrics": check_metrics}


@pytest.mark.parametrize("name", list(APPS))
class TestWithOtelLLM:
    def test_app_ran(self, runs, name):
        """The app served every route (the failed call answered 502 by the app) and exited cleanly."""
        run = runs(name, True)
        assert run.returncode == 0, run.stderr
        assert len(run.server_spans()) == len(APPS[name].calls), run.stderr

    @pytest.mark.parametrize("check", CHECKS)
    def test_check_holds(self, runs, name, check):
        """LLM span provider/model, SERVER span roll-up, metrics once per call with a provider label."""
        run = runs(name, True)
        assert CHECK_FUNCTIONS[check](APPS[name], run) == []

    def test_no_view_conflict_warnings(self, runs, name):
        """No 'conflicting metrics identities' warnings from the SDK (openai-v2 gave two, one view each)."""
        assert "conflicting metrics identities" not in runs(name, True).stderr


@pytest.mark.parametrize("name", list(APPS))
class TestControlWithoutOtelLLM:
    def test_checks_fail_without_otel_llm(self, runs, name):
        """The same app with OTEL_LLM_ENABLED=false: each check otel-llm is needed for finds problems."""
        run = runs(name, False)
        assert run.returncode == 0 and len(run.server_spans()) == len(APPS[name].calls), run.stderr
        app = APPS[name]
        assert set(app.control_fails) | set(app.control_passes) == set(CHECKS)
        for check in app.control_fails:
            assert CHECK_FUNCTIONS[check](app, run), f"{check} holds without otel-llm"
        for check in app.control_passes:
            assert CHECK_FUNCTIONS[check](app, run) == [], f"{check}: expected to hold already"
