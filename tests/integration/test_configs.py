"""The stack's configs, checked by the real binaries.

Every collector and Jaeger variant goes through ``validate`` (invalid ones must fail with their error), the
rendered Prometheus config and rules through ``promtool``, and the collector's generated GenAI normalisation
through the running collector, case by case against ``otel_llm.semconv.resolve_provider``. Variants declare
their expectation on their first line: ``# expect: valid`` or ``# expect-error: <substring>``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm import semconv
from otel_llm.processors.normalize import enrichment, llm_call_of
from otel_llm.stack import paths
from otel_llm.stack.prometheus import write_prometheus_config
from otel_llm.stack.run import ALL_PORTS, SPM_PROMETHEUS_URL_ENV, free_ports
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.poll import poll
from tests.support.senders import post_otlp_json_span, unique_service
from tests.support.stack import start_stack

VALIDATE_TIMEOUT_SECONDS = 60
EXPECT_VALID = "# expect: valid"
EXPECT_ERROR = "# expect-error: "


Configs = tuple[Path, ...]  # the --config files of one collector or Jaeger, merged in order


def _variants(main_configs: tuple[Configs, ...], testdata: Path) -> list[tuple[Configs, str | None]]:
    """(configs, expected error substring or None) for the main configs and every testdata variant.

    A testdata variant named ``*-gateway-overlay.yaml`` is layered on the gateway's configs like gateway.yaml.
    """
    variants: list[tuple[Configs, str | None]] = [(configs, None) for configs in main_configs]
    for path in sorted(testdata.glob("*.yaml")):
        first_line = path.read_text().splitlines()[0]
        overlay = path.name.endswith("-gateway-overlay.yaml")
        configs = (*paths.COLLECTOR_GATEWAY_CONFIGS, path) if overlay else (path,)
        if first_line.startswith(EXPECT_ERROR):
            variants.append((configs, first_line.removeprefix(EXPECT_ERROR)))
        elif first_line == EXPECT_VALID:
            variants.append((configs, None))
        else:
            raise ValueError(f"{path}: first line must be '{EXPECT_VALID}' or '{EXPECT_ERROR}<substring>'")
    return variants


COLLECTOR_MAIN_CONFIGS = ((paths.COLLECTOR_CONFIG,), (paths.COLLECTOR_AGENT_CONFIG,),
                          paths.COLLECTOR_GATEWAY_CONFIGS, paths.KUBERNETES_AGENT_CONFIGS,
                          paths.KUBERNETES_GATEWAY_CONFIGS)
COLLECTOR_VARIANTS = _variants(COLLECTOR_MAIN_CONFIGS, paths.COLLECTOR_TESTDATA)
JAEGER_VARIANTS = _variants(((paths.JAEGER_CONFIG,), (paths.JAEGER_CONFIG_MEMORY,)), paths.JAEGER_TESTDATA)


def _stack_like_env(tmp_path: Path) -> dict[str, str]:
    """Every variable of docs/stack.md set as the runner sets them: free ports, temporary directories."""
    ports = free_ports(len(ALL_PORTS))
    env = {spec.env_var: str(port) for spec, port in zip(ALL_PORTS, ports, strict=True)}
    env.update({
        "OTEL_LLM_COLLECTOR_STORAGE_DIR": str(tmp_path / "queue"),
        "OTEL_LLM_STACK_JAEGER_BADGER_DIR": str(tmp_path / "badger"),
        SPM_PROMETHEUS_URL_ENV: "http://127.0.0.1:1",
        "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s",
        "OTEL_LLM_COLLECTOR_SERIES_EXPIRATION": "2m",
        "OTEL_LLM_COLLECTOR_MEMORY_LIMIT_MIB": "256",
        "LANGSMITH_API_KEY": "lsv2-validate",
        "LANGSMITH_PROJECT": "validate",
        "LANGSMITH_ENDPOINT": "http://127.0.0.1:1",
    })
    return env


def _validate(binary: Path, configs: Configs, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    flags = [part for config in configs for part in ("--config", str(config))]
    return _run([str(binary), "validate", *flags], env={**base, **(env or {})})


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_SECONDS,
                          check=False)


def _assert_outcome(result: subprocess.CompletedProcess, expected_error: str | None) -> None:
    output = result.stdout + result.stderr
    if expected_error is None:
        assert result.returncode == 0, output
    else:
        assert result.returncode != 0, f"validate passed, expected a failure with {expected_error!r}"
        assert expected_error in output, output


VARIANTS = [("collector", configs, error) for configs, error in COLLECTOR_VARIANTS] + [
    ("jaeger", configs, error) for configs, error in JAEGER_VARIANTS]


class TestValidate:
    @pytest.mark.parametrize(("binary", "configs", "expected_error"), VARIANTS,
                             ids=[f"{binary}-{'+'.join(path.name for path in configs)}"
                                  for binary, configs, _ in VARIANTS])
    def test_variant_validates_as_declared(self, stack_binaries, binary, configs, expected_error):
        """`validate` accepts the main configs and valid variants, rejects invalid ones with their error."""
        _assert_outcome(_validate(getattr(stack_binaries, binary), configs), expected_error)

    @pytest.mark.parametrize(("binary", "configs"), [
        *(("collector", configs) for configs in COLLECTOR_MAIN_CONFIGS), ("jaeger", (paths.JAEGER_CONFIG,))])
    def test_config_validates_with_the_runners_environment(self, stack_binaries, tmp_path, binary, configs):
        """The stack's configs validate with every env var set as the runner sets them."""
        _assert_outcome(_validate(getattr(stack_binaries, binary), configs, _stack_like_env(tmp_path)), None)

    @pytest.mark.parametrize(("variable", "value", "expected_error"), [
        ("OTEL_LLM_COLLECTOR_MEMORY_LIMIT_MIB", "lots", "'limit_mib' expected type 'uint32'"),
        ("OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT", "http", "prometheus.port' expected type 'int'"),
        ("OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL", "soon",
         "'metrics_flush_interval' time: invalid duration"),
        ("OTEL_LLM_COLLECTOR_SERIES_EXPIRATION", "soon", "'series_expiration' time: invalid duration"),
        # Both llm_rollup instances read it: the error names each, with the value it got.
        ("OTEL_LLM_COLLECTOR_ROLLUP_MAX_SPANS", "many", "'max_spans' expected type 'int'"),
        ("OTEL_LLM_COLLECTOR_ROLLUP_MAX_SPANS", "10",
         "llm_rollup/langsmith: max_spans_per_trace must be between 1 and max_spans (10)"),
        # The gateway's sampling settings (collector/gateway.yaml on top of config.yaml).
        ("OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE", "most", "sampling_percentage' expected type 'float64'"),
        ("OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS", "3s", "latency.threshold_ms' expected type 'int64'"),
        ("OTEL_LLM_COLLECTOR_SAMPLING_WAIT", "soon", "'decision_wait' time: invalid duration"),
        ("OTEL_LLM_COLLECTOR_SAMPLING_MAX_TRACES", "many", "'num_traces' expected type 'uint64'"),
    ])
    def test_bad_env_value_fails_validation_naming_the_field(self, stack_binaries, variable, value,
                                                             expected_error):
        """A typed setting given a wrong value in the environment is rejected by validate, field named."""
        configs = paths.COLLECTOR_GATEWAY_CONFIGS if "SAMPLING" in variable else (paths.COLLECTOR_CONFIG,)
        _assert_outcome(_validate(stack_binaries.collector, configs, {variable: value}), expected_error)


def test_span_metrics_dimensions_are_the_llm_attributes():
    """span_metrics groups by exactly the semconv names of the issue (provider, model, operation, ...)."""
    config = yaml.safe_load(paths.COLLECTOR_CONFIG.read_text())
    dimensions = [item["name"] for item in config["connectors"]["span_metrics"]["dimensions"]]
    assert dimensions == [
        semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_OPERATION_NAME,
        semconv.EXPERIMENT_ARM, semconv.LANGGRAPH_NODE, semconv.ROLLUP_PROVIDER, semconv.ROLLUP_MODEL,
        semconv.LANGSMITH_INTENT,
    ]
    assert config["connectors"]["span_metrics"]["histogram"]["unit"] == "ms"


class TestPrometheusConfig:
    def test_rendered_config_passes_promtool_check(self, stack_binaries, tmp_path):
        """The template rendered with the runner's variables is a config promtool accepts, rules included."""
        config = write_prometheus_config(tmp_path / "prometheus.yml", _stack_like_env(tmp_path))
        result = _run([str(stack_binaries.promtool), "check", "config", str(config)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert str(paths.PROMETHEUS_RULES_DIR) in result.stdout + result.stderr  # the rules were loaded too

    def test_rules_pass_promtool_check(self, stack_binaries):
        """Every rule file parses, with valid PromQL and templates."""
        rule_files = sorted(paths.PROMETHEUS_RULES_DIR.glob("*.yml"))
        assert rule_files
        result = _run([str(stack_binaries.promtool), "check", "rules", *map(str, rule_files)])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rule_unit_tests_pass(self, stack_binaries):
        """`promtool test rules`: each alert fires on a breaching series and stays silent on a healthy one."""
        test_files = sorted(paths.PROMETHEUS_RULE_TESTS_DIR.glob("*.yml"))
        assert test_files
        result = _run([str(stack_binaries.promtool), "test", "rules", *map(str, test_files)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    def test_every_alert_has_a_firing_and_a_silent_evaluation(self):
        """The rule tests evaluate every alert at least once expecting it to fire, once expecting silence."""
        expectations: dict[str, set[bool]] = {name: set() for name in _alert_names()}
        for test_file in paths.PROMETHEUS_RULE_TESTS_DIR.glob("*.yml"):
            for case in yaml.safe_load(test_file.read_text())["tests"]:
                for evaluation in case.get("alert_rule_test", []):
                    expectations[evaluation["alertname"]].add(bool(evaluation["exp_alerts"]))
        assert {name: seen for name, seen in expectations.items() if seen != {True, False}} == {}

    def test_each_alerts_early_evaluation_catches_a_missing_hold(self, stack_binaries, tmp_path):
        """With every `for:` removed from the rules, the rule tests fail on every alert: each has an
        evaluation where its condition already holds but its hold has not elapsed."""
        (tmp_path / "rules").mkdir()
        (tmp_path / "tests").mkdir()
        for rule_file in paths.PROMETHEUS_RULES_DIR.glob("*.yml"):
            rules = yaml.safe_load(rule_file.read_text())
            for group in rules["groups"]:
                for rule in group["rules"]:
                    rule.pop("for", None)
            (tmp_path / "rules" / rule_file.name).write_text(yaml.safe_dump(rules))
        for test_file in paths.PROMETHEUS_RULE_TESTS_DIR.glob("*.yml"):
            (tmp_path / "tests" / test_file.name).write_text(test_file.read_text())
        result = _run([str(stack_binaries.promtool), "test", "rules",
                       *map(str, sorted((tmp_path / "tests").glob("*.yml")))])
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert [name for name in _alert_names() if f"alertname: {name}," not in output] == []


def _alert_names() -> list[str]:
    """Every alert of the rule files."""
    return [rule["alert"] for rule_file in sorted(paths.PROMETHEUS_RULES_DIR.glob("*.yml"))
            for group in yaml.safe_load(rule_file.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


# --- the generated normalisation, run by the collector ---------------------------------------------------
def _normalisation_cases() -> list[tuple[str, dict[str, object]]]:
    """(case id, span attributes): every alias and model rule of semconv, the precedence rules, bad values."""
    chat = {semconv.GEN_AI_OPERATION_NAME: "chat"}
    cases: list[tuple[str, dict[str, object]]] = []
    for canonical, aliases in semconv.PROVIDER_ALIASES.items():
        for alias in aliases:
            cases.append((f"system-alias-{alias}", {**chat, semconv.GEN_AI_SYSTEM: alias}))
        upper = canonical.upper()
        cases.append((f"provider-name-upper-{canonical}", {**chat, semconv.GEN_AI_PROVIDER_NAME: upper}))
    models = ("gpt-4o-mini", "o1", "o3-mini", "text-embedding-3-small", "claude-3-5-sonnet-latest",
              "gemini-1.5-pro", "mistral-large-latest", "command-r-plus", "grok-2", "deepseek-chat",
              "llama3:8b",
              "anthropic.claude-3-haiku-20240307-v1:0", "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
              "meta.llama3-70b-instruct-v1:0", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x")
    for model in models:
        cases.append((f"model-only-{model}", {**chat, semconv.GEN_AI_REQUEST_MODEL: model}))
    bedrock_claude = "anthropic.claude-3-haiku-20240307-v1:0"
    cases += [
        ("bedrock-id-beats-system", {**chat, semconv.GEN_AI_SYSTEM: "anthropic",
                                     semconv.GEN_AI_REQUEST_MODEL: bedrock_claude}),
        ("ls-provider-beats-system", {semconv.LANGSMITH_SPAN_KIND: "llm", semconv.GEN_AI_SYSTEM: "anthropic",
                                      semconv.LANGSMITH_LS_PROVIDER: "amazon_bedrock",
                                      semconv.GEN_AI_REQUEST_MODEL: "claude-3-haiku"}),
        ("provider-name-beats-ls-provider", {**chat, semconv.GEN_AI_PROVIDER_NAME: "Azure OpenAI",
                                             semconv.LANGSMITH_LS_PROVIDER: "openai"}),
        ("framework-system-falls-to-model", {**chat, semconv.GEN_AI_SYSTEM: "LangChain",
                                             semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}),
        ("system-beats-non-bedrock-model", {**chat, semconv.GEN_AI_SYSTEM: "groq",
                                            semconv.GEN_AI_REQUEST_MODEL: "llama-3.1-70b"}),
        ("ls-model-name-when-no-request-model", {semconv.LANGSMITH_SPAN_KIND: "llm",
                                                 semconv.LANGSMITH_LS_MODEL_NAME: "gemini-2.0-flash"}),
        ("response-model-last", {**chat, semconv.GEN_AI_RESPONSE_MODEL: "claude-3-opus"}),
        ("blank-request-model-skipped", {**chat, semconv.GEN_AI_REQUEST_MODEL: "   ",
                                         semconv.LANGSMITH_LS_MODEL_NAME: "grok-beta"}),
        ("unknown-provider-cleaned", {**chat, semconv.GEN_AI_SYSTEM: "  My Provider!! "}),
        ("huge-provider-capped", {**chat, semconv.GEN_AI_SYSTEM: "p" * 300}),
        ("punctuation-provider-falls-through", {**chat, semconv.GEN_AI_PROVIDER_NAME: "!!!",
                                                semconv.LANGSMITH_LS_PROVIDER: "OpenAI"}),
        ("empty-system-falls-to-model", {**chat, semconv.GEN_AI_SYSTEM: "",
                                         semconv.GEN_AI_REQUEST_MODEL: "claude-3"}),
        ("integer-system", {**chat, semconv.GEN_AI_SYSTEM: 42}),
        ("openllmetry-request-type", {semconv.OPENLLMETRY_REQUEST_TYPE: "completion",
                                      semconv.GEN_AI_SYSTEM: "Mistral"}),
        ("system-and-model-without-operation", {semconv.GEN_AI_SYSTEM: "vertex_ai",
                                                semconv.GEN_AI_REQUEST_MODEL: "gemini-1.5-pro"}),
        ("not-llm-chain-span", {semconv.LANGSMITH_SPAN_KIND: "chain", semconv.GEN_AI_SYSTEM: "openai",
                                semconv.GEN_AI_OPERATION_NAME: "chain"}),
        ("not-llm-tool-span-keeps-alias", {semconv.GEN_AI_OPERATION_NAME: "execute_tool",
                                           semconv.GEN_AI_PROVIDER_NAME: "bedrock"}),
        ("not-llm-framework-only", {semconv.GEN_AI_SYSTEM: "langchain",
                                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}),
        ("canonical-untouched", {**chat, semconv.GEN_AI_PROVIDER_NAME: "openai",
                                 semconv.GEN_AI_REQUEST_MODEL: bedrock_claude}),
        ("nothing-to-infer", {**chat, semconv.GEN_AI_REQUEST_MODEL: "my-own-model"}),
        ("nothing-at-all", {**chat}),
        ("huge-model-capped", {**chat, semconv.GEN_AI_REQUEST_MODEL: "gpt-" + "x" * 300}),
        ("azure-host-beats-openai", {**chat, semconv.GEN_AI_PROVIDER_NAME: "openai",
                                     semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                                     semconv.SERVER_ADDRESS: "interop.openai.azure.com"}),
        ("azure-url-openllmetry", {**chat, semconv.GEN_AI_PROVIDER_NAME: "openai",
                                   semconv.SERVER_ADDRESS: "https://r.openai.azure.com/openai/"}),
        ("look-alike-host-ignored", {**chat, semconv.GEN_AI_PROVIDER_NAME: "openai",
                                     semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                     semconv.SERVER_ADDRESS: "openai.azure.com.example"}),
        ("bedrock-host", {**chat, semconv.GEN_AI_REQUEST_MODEL: "my-model",
                          semconv.SERVER_ADDRESS: "bedrock-runtime.eu-west-1.amazonaws.com"}),
        ("openinference-azure", {semconv.OPENINFERENCE_SPAN_KIND: "LLM",
                                 semconv.OPENINFERENCE_PROVIDER: "azure",
                                 semconv.OPENINFERENCE_SYSTEM: "openai",
                                 semconv.OPENINFERENCE_MODEL_NAME: "gpt-4o-mini-2024-07-18"}),
        ("openinference-system-only", {semconv.OPENINFERENCE_SPAN_KIND: "LLM",
                                       semconv.OPENINFERENCE_SYSTEM: "anthropic"}),
        ("openinference-model-only", {semconv.OPENINFERENCE_SPAN_KIND: "EMBEDDING",
                                      semconv.OPENINFERENCE_MODEL_NAME: "text-embedding-3-small"}),
        ("not-llm-openinference-chain", {semconv.OPENINFERENCE_SPAN_KIND: "CHAIN",
                                         semconv.GEN_AI_OPERATION_NAME: "chat",
                                         semconv.OPENINFERENCE_MODEL_NAME: "gpt-4o"}),
        ("node-from-langsmith-metadata", {semconv.LANGSMITH_SPAN_KIND: "chain",
                                          semconv.LANGSMITH_LANGGRAPH_NODE: " intent "}),
        ("node-on-llm-span", {semconv.LANGSMITH_SPAN_KIND: "llm", semconv.LANGSMITH_LS_PROVIDER: "openai",
                              semconv.LANGSMITH_LS_MODEL_NAME: "gpt-4o",
                              semconv.LANGSMITH_LANGGRAPH_NODE: "answer"}),
        ("node-ours-kept", {semconv.LANGGRAPH_NODE: "mine", semconv.LANGSMITH_LANGGRAPH_NODE: "theirs"}),
    ]
    return cases


ENRICHED = (semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL, semconv.LANGGRAPH_NODE)


def _expected(attributes: dict[str, object]) -> dict[str, str | None]:
    """What the SDK's export-side enrichment (processors.normalize) makes of a span with these attributes."""
    span = ReadableSpan(name="expected", attributes=attributes)
    after = {**attributes, **enrichment(span, llm_call_of(span))}
    return {key: None if after.get(key) is None else str(after[key]) for key in ENRICHED}


def _string_attribute(span, key: str) -> str | None:
    """An OTLP span attribute as text (a non-string value printed), or None when absent."""
    for attribute in span.attributes:
        if attribute.key == key:
            return str(getattr(attribute.value, attribute.value.WhichOneof("value")))
    return None


@pytest.fixture(scope="module")
def lone_collector(stack_binaries, tmp_path_factory):
    """The collector alone (collector/config.yaml) with LangSmith's stand-in as its window on processed spans.

    Not the shared stack: the case spans name every provider and must not turn up in other tests' searches.
    """
    receiver = OtlpHttpReceiver()
    runner = start_stack(tmp_path_factory.mktemp("lone-collector"), langsmith_endpoint=receiver.base_url,
                         components=("collector",))
    try:
        yield runner, receiver
    finally:
        runner.down()
        receiver.close()


def test_collector_enriches_spans_like_the_sdk(lone_collector):
    """Spans from a service without otel_llm leave the collector enriched exactly as the SDK enriches them."""
    runner, receiver = lone_collector
    service = unique_service("normalise")
    cases = dict(_normalisation_cases())
    prefix = f"{service}:"
    for case_id, attributes in cases.items():
        post_otlp_json_span(runner.otlp_http_endpoint, service, prefix + case_id, attributes)

    def received():
        spans = {span.name.removeprefix(prefix): span for span in receiver.spans()
                 if span.name.startswith(prefix)}
        return spans if len(spans) == len(cases) else None

    spans = poll(received, timeout=30, message=f"{len(cases)} normalisation spans at LangSmith's stand-in")
    outcomes = {case_id: ({key: _string_attribute(spans[case_id], key) for key in ENRICHED},
                          _expected(attributes)) for case_id, attributes in cases.items()}
    mismatches = {case_id: outcome for case_id, outcome in outcomes.items() if outcome[0] != outcome[1]}
    assert not mismatches, f"case: (collector, SDK enrichment) {mismatches}"


def test_jaeger_monitor_api_reads_span_metrics_from_prometheus(stack):
    """Jaeger's SPM (`/api/metrics/calls`) finds a service's call rate in the collector's span metrics."""
    service = unique_service("spm")

    def call_rate_points() -> list:
        # A span per probe: a rate needs the counter to grow between two scrapes, and spans sent all at once
        # can reach Prometheus in its first sample of the series (rate 0 from then on).
        post_otlp_json_span(stack.otlp_http_endpoint, service, "chat",
                            {semconv.GEN_AI_OPERATION_NAME: "chat"})
        now_ms = int(time.time() * 1000)
        response = requests.get(f"{stack.jaeger_query_url}/api/metrics/calls", timeout=10, params={
            "service": service, "endTs": now_ms, "lookback": 600_000, "step": 1000, "ratePer": 60_000,
            "spanKind": "client"})  # post_otlp_json_span makes CLIENT spans
        response.raise_for_status()
        return [point for series in response.json().get("metrics", []) for point in series["metricPoints"]
                if point.get("gaugeValue", {}).get("doubleValue", 0) > 0]

    assert poll(call_rate_points, timeout=60, message=f"a positive call rate for {service} from Jaeger SPM")
