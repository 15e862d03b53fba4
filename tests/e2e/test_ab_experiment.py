"""`otel-llm ab` end to end: the reference app in a two-arm experiment on the real stack.

One arm's fake provider is slower (per-provider demo latency, and a much later first token) and ten times
dearer (a price file, OTEL_LLM_COST_PRICES_FILE); the report must name it slower, name the other arm cheaper,
and call both differences significant. With both arms equally fast and equally priced it must call neither,
and its numbers must be the second experiment's alone: the slow run's traces and time-to-first-token series,
with the same arm names, are still inside the lookback window. The arms are assigned at random, so under equal
prices each arm's messages (and so tokens and cost) are draws from one mix: the cost test's p-value is as
valid as the latency one's.

The identical-arms run uses ``--alpha 0.01``, not the default 0.05. Under no difference the p-value of any
valid test is uniform, so at alpha the report raises a false alarm in a fraction alpha of runs, whatever the
sample size: at the default this test would fail one run in twenty by design; at 0.01, one in a hundred. The
slow-arm run is significant far below either (p < 1e-6 with 20 requests per arm fully separated), so the lower
alpha costs that check nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otel_llm.ab.sources import PrometheusSource, jaeger_samples
from otel_llm.cli.demo_stack import API_SERVICE
from otel_llm.cli.search import JaegerClient
from otel_llm.demo.models import LATENCY_ENV, PROVIDER_MODELS, TTFT_ENV, provider_variable
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

REQUESTS = 40
CONCURRENCY = 8
MESSAGES = ("How do I recycle a plastic bottle?", "Will it rain tomorrow?", "Tell me about your character.")
OPENAI, BEDROCK = (PROVIDER_MODELS[name] for name in ("openai", "aws.bedrock"))
OPENAI_ARM, BEDROCK_ARM = (f"{spec.provider}:{spec.model}" for spec in (OPENAI, BEDROCK))
LOOKBACK = "15m"
OTEL_LLM = str(Path(sys.executable).with_name("otel-llm"))  # the installed console script


SLOW_BEDROCK_MS, SLOW_BEDROCK_TTFT_MS = 300, 200
# USD per million input / output tokens: the catalogue's gpt-4o-mini list price, and Bedrock at ten times it
# (a price file, so the contrast does not move with the catalogue); then both at the same price.
OPENAI_PRICE, DEAR_BEDROCK_PRICE = (0.15, 0.60), (1.50, 6.00)


def price_file(path: Path, bedrock: tuple[float, float]) -> Path:
    """An OTEL_LLM_COST_PRICES_FILE pricing the demo's two models."""
    path.write_text("".join(
        f'[[price]]\nprovider = "{spec.provider}"\nmodel = "{spec.model}"\n'
        f"input_mtok = {rates[0]}\noutput_mtok = {rates[1]}\n\n"
        for spec, rates in ((OPENAI, OPENAI_PRICE), (BEDROCK, bedrock))))
    return path
# The semconv TTFT bucket below the slow run's Bedrock TTFT: a report mixing in the slow run is above it.
POLLUTED_TTFT_S = 0.16


def experiment_env(
    experiment_id: str, openai_ms: int, bedrock_ms: int, bedrock_ttft_ms: int | None = None
) -> dict[str, str]:
    return {
        "OTEL_LLM_EXPERIMENT_ID": experiment_id,
        "OTEL_LLM_EXPERIMENT_ARMS": f"{OPENAI_ARM}=50,{BEDROCK_ARM}=50",
        provider_variable(LATENCY_ENV, OPENAI.provider): str(openai_ms),
        provider_variable(LATENCY_ENV, BEDROCK.provider): str(bedrock_ms),
        provider_variable(TTFT_ENV, OPENAI.provider): str(openai_ms // 3),
        provider_variable(TTFT_ENV, BEDROCK.provider): str(
            bedrock_ms // 3 if bedrock_ttft_ms is None else bedrock_ttft_ms
        ),
    }


def ab_report(stack, experiment_id: str, *extra: str) -> dict:
    """Waits until Jaeger holds every request's whole trace, then runs `otel-llm ab --json`."""
    client = JaegerClient(stack.jaeger_query_url)

    def complete():
        samples = jaeger_samples(client, [API_SERVICE], 15 * 60 * 1_000_000, 1000, experiment_id)
        return len(samples) == REQUESTS and all(s.tokens for s in samples)

    poll(complete, timeout=90, message=f"{REQUESTS} complete traces of {experiment_id} in Jaeger")
    result = subprocess.run(
        [
            OTEL_LLM,
            "ab",
            "--jaeger-url",
            stack.jaeger_query_url,
            "--prometheus-url",
            stack.prometheus_url,
            "--experiment",
            experiment_id,
            "--service",
            API_SERVICE,
            "--lookback",
            LOOKBACK,
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def spans_cost(report: dict) -> dict[str, float]:
    """Per arm, what its requests cost by the spans (the report's mean cost per request x requests)."""
    return {arm["arm"]: arm["cost_per_request"] * arm["requests"] for arm in report["arms"]}


def cost_by_arm(stack, experiment_id: str, expected: dict[str, float]) -> dict[str, float]:
    """Waits until Prometheus' cost counter of the experiment equals ``expected`` per arm (the SDK exports
    its metrics every 15 s, so earlier values may be partial); its value per arm."""
    source = PrometheusSource(stack.prometheus_url)
    promql = (f'sum by (llm_experiment_arm) (llm_client_cost_total{{llm_experiment_id="{experiment_id}", '
              f'llm_usage_cost_currency="USD", gen_ai_provider_name!=""}})')

    def complete():
        found = {labels["llm_experiment_arm"]: value for labels, value in source.query(promql)}
        return found if found.keys() == expected.keys() and all(
            found[arm] == pytest.approx(total, rel=1e-6) for arm, total in expected.items()) else None

    return poll(complete, timeout=90, message=f"llm_client_cost_total of {experiment_id} = {expected}")


def run_experiment(
    stack,
    log_path,
    openai_ms: int,
    bedrock_ms: int,
    *extra: str,
    bedrock_ttft_ms: int | None = None,
    env: dict | None = None,
    costs: dict | None = None,
) -> dict:
    """Runs the app in a fresh experiment, sends REQUESTS conversations, reports while the app still runs
    (and, given ``costs``, fills it with the cost counter per arm from Prometheus)."""
    experiment_id = f"ab-{uuid.uuid4().hex[:8]}"
    env = {**experiment_env(experiment_id, openai_ms, bedrock_ms, bedrock_ttft_ms), **(env or {})}
    bodies = [(MESSAGES[i % len(MESSAGES)], f"{experiment_id}-{i}", f"user-{i}") for i in range(REQUESTS)]
    with ReferenceApp(stack, log_path, env=env) as app:
        jobs = app.load(bodies, concurrency=CONCURRENCY)
        assert {job["status"] for job in jobs} == {"done"}
        assert {job["provider"] for job in jobs} == {OPENAI.provider, BEDROCK.provider}
        # Inside the block: the API process does not flush its last spans on SIGTERM.
        report = ab_report(stack, experiment_id, *extra)
        if costs is not None:
            costs.update(cost_by_arm(stack, experiment_id, spans_cost(report)))
        return report


@pytest.fixture(scope="module")
def slow_bedrock(stack, tmp_path_factory):
    """Bedrock 10x slower and dearer than OpenAI (first token after 200 ms), with METRIC lines on: (report,
    chart path, METRIC log path, the cost counter per arm in Prometheus)."""
    directory = tmp_path_factory.mktemp("ab-slow")
    chart, metric_log = directory / "ab.png", directory / "metric.log"
    costs: dict[str, float] = {}
    report = run_experiment(
        stack,
        directory / "app.log",
        30,
        SLOW_BEDROCK_MS,
        "--chart",
        str(chart),
        bedrock_ttft_ms=SLOW_BEDROCK_TTFT_MS,
        env={"OTEL_LLM_METRIC_LOG": str(metric_log),
             "OTEL_LLM_COST_PRICES_FILE": str(price_file(directory / "prices.toml", DEAR_BEDROCK_PRICE))},
        costs=costs,
    )
    return report, chart, metric_log, costs


def test_slower_arm_named_and_significant(slow_bedrock):
    """Bedrock 10x slower than OpenAI: the report names the Bedrock arm significantly slower, charts it, and
    its Bedrock first tokens are late (the contrast the identical-arms check relies on)."""
    report, chart, *_ = slow_bedrock
    assert report["slower_arm"] == BEDROCK_ARM
    assert report["significant"] is True
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert arms.keys() == {OPENAI_ARM, BEDROCK_ARM}
    assert sum(arm["requests"] for arm in arms.values()) == REQUESTS
    assert arms[BEDROCK_ARM]["p50_s"] > arms[OPENAI_ARM]["p50_s"]
    assert all(arm["tokens_per_request"] > 0 and arm["error_rate"] == 0 for arm in arms.values())
    assert all(arm["ttft_p50_s"] is not None for arm in arms.values())
    assert arms[BEDROCK_ARM]["ttft_p50_s"] > POLLUTED_TTFT_S > arms[OPENAI_ARM]["ttft_p50_s"]
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_cheaper_arm_named_and_significant(slow_bedrock):
    """Bedrock priced at ten times OpenAI: the report names the OpenAI arm cheaper, significantly, with a
    positive difference per 1,000 requests; every request has a cost."""
    report = slow_bedrock[0]
    assert report["cheaper_arm"] == OPENAI_ARM
    assert report["cost_significant"] is True
    (comparison,) = report["cost_comparisons"]
    assert comparison["baseline"] == OPENAI_ARM and comparison["arm"] == BEDROCK_ARM
    assert comparison["currency"] == "USD"
    assert comparison["difference_per_1000_ci"][0] > 0
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert arms[BEDROCK_ARM]["cost_per_request"] > 5 * arms[OPENAI_ARM]["cost_per_request"] > 0
    assert all(arm["priced_requests"] == arm["requests"] for arm in arms.values())


def test_cost_counter_reaches_prometheus_per_arm(slow_bedrock):
    """llm_client_cost_total, by arm, provider and currency, reached what the spans say each arm cost (the
    fixture polled for it): the dashboard's and the alert's input, one count per call."""
    report, _, _, costs = slow_bedrock
    assert costs.keys() == {OPENAI_ARM, BEDROCK_ARM}
    assert costs == pytest.approx(spans_cost(report), rel=1e-6)


def test_metric_lines_from_the_app_carry_provider_model_and_arm(slow_bedrock):
    """OTEL_LLM_METRIC_LOG: every request line has a provider and model, the API's from the assigned arm
    (provider_source=arm: its calls run in the worker), the worker's from the roll-up; LLM calls get lines."""
    lines = slow_bedrock[2].read_text().splitlines()
    requests_ = [
        dict(field.split("=", 1) for field in line.split("|")[1:])
        for line in lines
        if line.startswith("METRIC|event=request|")
    ]
    pairs = {(OPENAI.provider, OPENAI.model, OPENAI_ARM), (BEDROCK.provider, BEDROCK.model, BEDROCK_ARM)}
    for source, path in (("arm", "/api/v1/chat"), ("rollup", "chat:jobs")):
        of_source = [r for r in requests_ if r["path"] == path]
        assert len(of_source) == REQUESTS and {r["provider_source"] for r in of_source} == {source}
        assert {(r["provider"], r["model"], r["arm"]) for r in of_source} == pairs
    assert all(float(r["ms_total"]) > 0 for r in requests_)
    assert any(line.startswith(f"METRIC|event=span|name=chat {BEDROCK.model}|ms=") for line in lines)


def test_identical_arms_not_significant_nor_mixed_with_the_slow_run(stack, slow_bedrock, tmp_path):
    """Both arms equally fast and equally priced, right after the slow run with the same arm names: neither
    difference is called significant, and requests and time to first token are this experiment's only (the
    slow run's 200 ms Bedrock first tokens would put its p95 above POLLUTED_TTFT_S)."""
    prices = price_file(tmp_path / "prices.toml", OPENAI_PRICE)
    report = run_experiment(stack, tmp_path / "app.log", 60, 60, "--alpha", "0.01",
                            env={"OTEL_LLM_COST_PRICES_FILE": str(prices)})
    assert report["significant"] is False
    assert report["cost_significant"] is False
    assert all(comparison["p_value"] is not None for comparison in report["cost_comparisons"])
    assert all(comparison["p_value"] is not None for comparison in report["comparisons"])
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert sum(arm["requests"] for arm in arms.values()) == REQUESTS
    assert all(arm["ttft_p95_s"] < POLLUTED_TTFT_S for arm in arms.values()), arms
