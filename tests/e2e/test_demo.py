"""``otel-llm demo`` end to end in a subprocess: the embedded reference app, no servers, both providers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from otel_llm.demo.models import PROVIDER_MODELS
from otel_llm.stack.paths import CACHE_DIR_ENV

# The console script users run (installed with the package next to this interpreter).
OTEL_LLM = os.path.join(os.path.dirname(sys.executable), "otel-llm")
pytestmark = pytest.mark.e2e

REQUESTS = 4
DEMO_TIMEOUT_S = 180


# Kept from the environment: where the stack binaries are cached (--stack reuses them); no telemetry.
KEPT_VARIABLES = frozenset({CACHE_DIR_ENV})


def run_demo(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # No OTEL_* from the developer's shell: the demo must work on a fresh machine with nothing configured.
    env = {
        key: value
        for key, value in os.environ.items()
        if key in KEPT_VARIABLES or not key.startswith(("OTEL_", "LANGSMITH_"))
    }
    env.update(extra_env or {})
    return subprocess.run(
        [OTEL_LLM, "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def demo_output() -> subprocess.CompletedProcess:
    result = run_demo("--requests", str(REQUESTS))
    assert result.returncode == 0, result.stderr
    return result


def test_demo_prints_one_tree_per_request_across_api_and_worker(demo_output):
    """Each request is one trace whose tree starts at the API and reaches the worker's LangGraph nodes."""
    headers = [line for line in demo_output.stdout.splitlines() if line.startswith("trace ")]
    assert len(headers) == REQUESTS
    assert all(" -> " in header and "LLM calls" in header for header in headers)
    assert "(node)" in demo_output.stdout or "node=" in demo_output.stdout


def test_demo_trees_hold_both_providers_llm_calls_with_tokens(demo_output):
    """LLM call lines name each provider/model with a duration and token counts."""
    for spec in PROVIDER_MODELS.values():
        calls = [
            line
            for line in demo_output.stdout.splitlines()
            if f"LLM {spec.provider}/{spec.model}" in line and "tokens " in line
        ]
        assert calls, f"no LLM call of {spec.provider}/{spec.model} in the trees"


def test_demo_summary_has_a_row_per_provider_and_model(demo_output):
    """The summary table lists calls, p50/p95, tokens and cost for both providers."""
    lines = demo_output.stdout.splitlines()
    start = lines.index("LLM calls per provider/model")
    header, _, *rows = lines[start + 1 :]
    assert header.split()[:6] == ["PROVIDER", "MODEL", "CALLS", "ERRORS", "P50", "P95"]
    providers = {row.split()[0]: row.split() for row in rows if row.strip()}
    for spec in PROVIDER_MODELS.values():
        row = providers[spec.provider]
        # ... TOKENS IN, TOKENS OUT, COST ("0.000069 USD": two words)
        tokens_in, tokens_out, cost, currency = row[-4:]
        assert row[1] == spec.model and int(row[2]) >= 1 and int(tokens_in) > 0 and int(tokens_out) > 0
        assert float(cost) > 0 and currency == "USD"


def test_demo_reports_progress_on_stderr(demo_output):
    """Progress lines arrive on stderr while the run goes (stdout stays the report)."""
    progress = [line for line in demo_output.stderr.splitlines() if line.startswith("[demo] ")]
    assert len(progress) >= 2 and progress[-1].startswith("[demo] done in ")
    assert "[demo]" not in demo_output.stdout


def test_demo_json_is_one_document_with_traces_and_summary():
    """--json prints traces (with trees and spans), requests and the summary rows as one JSON document."""
    result = run_demo("--requests", "2", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert len(document["traces"]) == 2 and len(document["requests"]) == 2
    assert {provider for trace in document["traces"] for provider in trace["providers"]} == set(
        PROVIDER_MODELS
    )
    assert all(
        trace["llm_calls"] > 0 and trace["tree"][0].startswith("trace ") for trace in document["traces"]
    )
    assert {row["provider"] for row in document["summary"]} == set(PROVIDER_MODELS)
    assert sum(row["calls"] for row in document["summary"]) == sum(t["llm_calls"] for t in document["traces"])
    assert all(
        {span["service"] for span in trace["spans"]} == set(trace["services"]) for trace in document["traces"]
    )


def test_bad_request_count_is_rejected():
    """--requests outside 1..200 exits 2 with argparse's message naming the option."""
    result = run_demo("--requests", "0")
    assert result.returncode == 2 and "--requests" in result.stderr


def test_demo_on_the_stack_reads_both_providers_traces_back_from_jaeger(stack_binaries, tmp_path):
    """--stack starts its own stack and the app, prints trees read back from Jaeger and the endpoints."""
    from otel_llm.stack.run import ALL_PORTS, STATE_DIR_ENV, free_ports

    ports = {
        spec.env_var: str(port) for spec, port in zip(ALL_PORTS, free_ports(len(ALL_PORTS)), strict=True)
    }
    env = {STATE_DIR_ENV: str(tmp_path / "state"), **ports}
    try:
        result = run_demo("--stack", "--requests", "2", extra_env=env)
    finally:
        subprocess.run(
            [OTEL_LLM, "stack", "down"], env={**os.environ, **env}, capture_output=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("2 traces from 2 requests, read from Jaeger")
    assert (
        sum(line.startswith("trace ") and "chat-api -> chat-worker" in line for line in out.splitlines()) == 2
    )
    for spec in PROVIDER_MODELS.values():
        assert f"LLM {spec.provider}/{spec.model}" in out
    assert "LLM calls per provider/model" in out
    jaeger_url = f"http://127.0.0.1:{ports['OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT']}"
    endpoints = out[out.index("Endpoints (the stack keeps running") :].splitlines()[1:]
    assert endpoints[0].split() == ["Jaeger", "query", "API", jaeger_url]
    assert endpoints[1].split() == ["Prometheus", f"http://127.0.0.1:{ports['OTEL_LLM_STACK_PROMETHEUS_PORT']}"]


def test_demo_on_the_stack_without_built_binaries_names_the_build_command(tmp_path):
    """--stack with an empty binary cache exits 1 with one line naming `otel-llm stack build`."""
    from otel_llm.stack.run import ALL_PORTS, STATE_DIR_ENV, free_ports

    ports = {
        spec.env_var: str(port) for spec, port in zip(ALL_PORTS, free_ports(len(ALL_PORTS)), strict=True)
    }
    env = {
        STATE_DIR_ENV: str(tmp_path / "state"),
        "OTEL_LLM_STACK_CACHE_DIR": str(tmp_path / "empty-cache"),
        **ports,
    }
    result = run_demo("--stack", "--requests", "1", extra_env=env)
    assert result.returncode == 1 and result.stdout == ""
    [error] = [line for line in result.stderr.splitlines() if not line.startswith("[demo] ")]
    assert error.startswith("otel-llm demo --stack: ") and "otel-llm stack build" in error
