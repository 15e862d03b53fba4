"""docs/quickstart.md as a new user runs it: every ``sh`` block as written, in order, so the page holds.

Each command line of the page's ``sh`` blocks runs in ``bash`` in the repository root, except the block marked
``<!-- quickstart: your own app`` (it starts an app the reader has and we do not); what a line exports (and
``. .venv/bin/activate``) carries to the lines after it, as in one terminal. The environment is a fresh
user's: a temporary HOME (so ``~/my-app/.venv`` is a new virtual environment) and no OTEL_*/LANGSMITH_*
variables; so the run takes seconds and leaves the machine alone, it has the shared pip and stack-binary
caches, a temporary state directory and random free ports (the page's commands take them from the
environment, and ``search``/``ab`` from the stack ``stack up`` recorded). The stack is stopped at the end.

Then the numbers the user looks at are checked: every ``otel-llm ab`` column has data and the report states
the difference with its interval; Prometheus' ``rate()`` over the run is not empty; and every figure of
``ab --json`` equals the same traces counted another way, from the raw spans of Jaeger's answer for one
service, and the statistics library called directly on them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy
import pytest
from scipy.stats import mannwhitneyu

from otel_llm import semconv
from otel_llm.stack.paths import cache_dir
from otel_llm.stack.run import ALL_PORTS, JAEGER_QUERY_HTTP, PROMETHEUS, STATE_DIR_ENV, free_ports
from tests.support.poll import poll
from tests.support.queries import jaeger_search, prometheus_query

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "docs" / "quickstart.md"
NOT_RUN_MARK = "<!-- quickstart: your own app"
VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 600
AB_COLUMNS = 11  # arm, requests, error %, p50, p95, p99, ttft p50/p95, tokens/req, cost/req ("0.0001 USD")


def quickstart_commands(text: str) -> list[str]:
    """The command lines of the page's ``sh`` blocks (continuations joined, comment lines dropped), in order,
    without the block after ``NOT_RUN_MARK``."""
    commands, block, skip, previous = [], None, False, ""
    for line in text.splitlines():
        if block is None:
            if line.startswith("```sh"):
                block, skip = [], previous.startswith(NOT_RUN_MARK)
            elif line.strip():
                previous = line.strip()
            continue
        if line.startswith("```"):
            if not skip:
                joined = "\n".join(block).replace("\\\n", " ")
                commands += [c for c in joined.splitlines() if c.strip() and not c.lstrip().startswith("#")]
            block = None
            continue
        block.append(line)
    return commands


def test_the_page_has_the_commands_this_test_relies_on():
    """The parser finds the install, stack, demo, search and ab commands and leaves the reader's app out."""
    commands = quickstart_commands(QUICKSTART.read_text())
    assert any("pip install '.[" in c for c in commands)
    assert any(c.startswith("otel-llm ab") for c in commands)
    assert not any("opentelemetry-instrument uvicorn" in c for c in commands)


@pytest.fixture(scope="module")
def flow(stack_binaries, tmp_path_factory):
    """Runs the page; yields (environment, {command: CompletedProcess})."""
    home = tmp_path_factory.mktemp("home")
    ports = dict(zip((spec.env_var for spec in ALL_PORTS), map(str, free_ports(len(ALL_PORTS))), strict=True))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "LANGSMITH_"))}
    env.update(
        HOME=str(home),
        PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"),
        OTEL_LLM_STACK_CACHE_DIR=str(cache_dir()),
        **{STATE_DIR_ENV: str(home / "state")},
        **ports,
    )
    results = {}
    exported = home / "environment"
    try:
        for command in quickstart_commands(QUICKSTART.read_text()):
            # The environment after the line is saved, for the next line: one terminal, a shell per line.
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f'{command}\nenv -0 > "{exported}"'],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            results[command] = result
            env = dict(item.split("=", 1) for item in exported.read_text().split("\0") if "=" in item)
        yield env, results
    finally:
        subprocess.run(
            [str(VENV_BIN / "otel-llm"), "stack", "down"], env=env, capture_output=True, timeout=120
        )


def _url(env: dict, spec) -> str:
    return f"http://127.0.0.1:{env[spec.env_var]}"


def test_every_ab_column_has_data_and_the_verdict_a_size(flow):
    """`otel-llm ab` as the page runs it (no flags: recorded ports, every service): a row per demo arm with
    a value in every column, and a verdict with the median difference and its interval."""
    _, results = flow
    [table] = [result.stdout for command, result in results.items() if command.startswith("otel-llm ab")]
    rows = [line.split() for line in table.splitlines() if re.match(r"^(openai|aws\.bedrock):", line)]
    assert len(rows) == 2, table
    assert all(len(row) == AB_COLUMNS and "-" not in row for row in rows), table
    assert all(int(row[1]) == 10 for row in rows), table
    assert re.search(
        r"median [+-]\d+\.\d ms \(95% CI [+-]\d+\.\d to [+-]\d+\.\d ms\), [+-]\d+\.\d%", table
    ), table


def test_rates_over_the_run_are_not_empty(flow):
    """Prometheus sees the demo's load as an increase: rate() of the GenAI call count over the run is > 0 (a
    short-lived process's series otherwise has one value and no rate)."""
    env, _ = flow
    promql = "sum(rate(gen_ai_client_operation_duration_seconds_count[5m]))"
    poll(
        lambda: any(float(r["value"][1]) > 0 for r in prometheus_query(_url(env, PROMETHEUS), promql)),
        timeout=30,
        message=f"{promql} > 0",
    )


def test_the_install_line_gives_an_app_environment_that_names_missing_extras(flow):
    """The page's install line made ~/my-app/.venv with the launcher and otel-llm's distro; the demo, whose
    extra it lacks, says which extra in one line instead of a traceback."""
    env, _ = flow
    venv = Path(env["HOME"]) / "my-app" / ".venv" / "bin"
    assert (venv / "opentelemetry-instrument").exists()
    result = subprocess.run(
        [str(venv / "otel-llm"), "demo"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "the 'demo' extra" in result.stderr, result.stderr


def raw_samples(jaeger_url: str) -> dict[str, list[dict]]:
    """Per arm, one dict per trace counted from the raw spans of Jaeger's answer for the API service alone
    (each trace once): duration, error, tokens and first-chunk times, every span id counted once. Read from
    the JSON itself, not with otel_llm.traces: the oracle for `ab`, which reads it with otel_llm.traces."""
    by_arm = defaultdict(list)
    for trace in jaeger_search(jaeger_url, "chat-api", limit=1000)["data"] or []:
        spans = {span["spanID"]: span for span in trace["spans"]}
        tags = {span_id: {tag["key"]: tag["value"] for tag in span.get("tags", [])}
                for span_id, span in spans.items()}
        arms = {t[semconv.EXPERIMENT_ARM] for t in tags.values() if semconv.EXPERIMENT_ARM in t}
        if not arms:
            continue
        [arm] = arms
        llm = [t for t in tags.values() if semconv.GEN_AI_USAGE_INPUT_TOKENS in t]
        by_arm[arm].append(
            {
                "services": {trace["processes"][span["processID"]]["serviceName"] for span in spans.values()},
                "duration_s": (
                    max(s["startTime"] + s["duration"] for s in spans.values())
                    - min(s["startTime"] for s in spans.values())
                )
                / 1e6,
                "error": any(t.get("error") is True for t in tags.values()),
                "tokens": sum(
                    int(t[semconv.GEN_AI_USAGE_INPUT_TOKENS])
                    + int(t.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0))
                    for t in llm
                ),
                "ttft_s": [
                    float(t[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])
                    for t in llm
                    if semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in t
                ],
            }
        )
    return by_arm


def test_ab_figures_equal_the_raw_spans_counted_another_way(flow):
    """Over the demo's multi-service traces, `ab --json` (every service's answer joined) gives per arm exactly
    what the raw spans of one service's answer give: requests, errors, duration percentiles, TTFT percentiles,
    tokens per request (and `search --arm` the same requests and tokens); its p-value is SciPy's on those
    durations."""
    env, _ = flow
    result = subprocess.run(
        ["otel-llm", "ab", "--json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout)
    raw = raw_samples(_url(env, JAEGER_QUERY_HTTP))
    assert all(len(t["services"]) >= 3 for samples in raw.values() for t in samples)
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert arms.keys() == raw.keys()
    for name, samples in raw.items():
        arm, durations = arms[name], [t["duration_s"] for t in samples]
        first_chunks = [s for t in samples for s in t["ttft_s"]]
        assert (arm["requests"], arm["errors"]) == (len(samples), sum(t["error"] for t in samples))
        assert [arm["p50_s"], arm["p95_s"], arm["p99_s"]] == pytest.approx(
            numpy.percentile(durations, [50, 95, 99])
        )
        assert [arm["ttft_p50_s"], arm["ttft_p95_s"]] == pytest.approx(
            numpy.percentile(first_chunks, [50, 95])
        )
        assert arm["tokens_per_request"] == pytest.approx(numpy.mean([t["tokens"] for t in samples]))
        found = subprocess.run(
            ["otel-llm", "search", "--arm", name, "--json", "--limit", "100"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        listed = json.loads(found.stdout)  # and as `otel-llm search` counts them
        assert len(listed) == arm["requests"]
        assert arm["tokens_per_request"] == pytest.approx(
            numpy.mean([t["input_tokens"] + t["output_tokens"] for t in listed])
        )
    [comparison] = report["comparisons"]
    durations = {name: [t["duration_s"] for t in samples] for name, samples in raw.items()}
    expected = mannwhitneyu(durations[comparison["arm"]], durations[comparison["baseline"]]).pvalue
    assert comparison["p_value"] == pytest.approx(expected)


def test_search_and_demo_print_the_command_that_draws_a_trace(flow):
    """`search` (on stderr) and `demo --stack` (in its endpoints) print `otel-llm trace ID`; run as printed,
    it draws the trace from Jaeger across the three services with the LLM calls, the arm and the roll-up."""
    env, results = flow
    [search] = [r for command, r in results.items() if command.startswith("otel-llm search --provider")]
    [demo] = [r for command, r in results.items() if command.startswith("otel-llm demo --stack")]
    printed = [re.search(r"otel-llm trace [0-9a-f]{32}", text) for text in (search.stderr, demo.stdout)]
    assert all(printed), (search.stderr, demo.stdout[-2000:])
    for match in printed:
        result = subprocess.run(
            ["bash", "-c", match.group(0)], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        header, *tree = result.stdout.splitlines()
        assert "chat-api -> chat-worker -> chat-services" in header and "3 LLM calls" in header
        assert any(" arm " in line and "rollup " in line for line in tree)
        assert sum(line.lstrip("│├└─ ").startswith("LLM ") for line in tree) == 3
