"""`otel-llm load` end to end: the Eco2 agent's scenario against the reference app on the real stack, and its
verdicts.

The app runs a two-arm experiment (OpenAI / Bedrock, 50/50) with the intent node of the Bedrock arm slowed by
INTENT_DELAY_MS (the reference app's fault-injection knob, OTEL_LLM_DEMO_NODE_DELAY_MS_INTENT_AWS_BEDROCK).
That breaks intent classification's P50 (100 ms) and P95 (300 ms) targets and nothing else: the whole
responses stay under 1 s (the general intent's P50) and retrieval and token publishing do not pass through the
intent node. So exactly one verdict fails, intent classification on the Bedrock arm, naming the intent node
and the Bedrock model beneath it; the OpenAI arm is the control, the same run without the slowdown, where
every SLO the reference app is built to meet (all five rows) passes.

The app is the one `otel-llm load --reference-app` starts on the session's stack (found through its recorded
state, as a user's `otel-llm stack up`), with the experiment and the slowdown in its environment. The verdict
counts are then recounted from the raw spans in Jaeger (the experiment id is this run's alone):
per arm, the intent node spans and the whole-response spans per intent, and how many of each lie within each
target.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from otel_llm.cli.demo_stack import WORKER_SERVICE
from otel_llm.cli.search import JaegerClient
from otel_llm.demo.graph import NODE_DELAY_ENV
from otel_llm.demo.models import PROVIDER_MODELS, provider_variable
from otel_llm.load.slo import PERCENTILES, load_slos
from otel_llm.semconv import (
    EXPERIMENT_ARM,
    EXPERIMENT_ID,
    LANGGRAPH_NODE,
    OPERATION_INVOKE_WORKFLOW,
    SESSION_ID,
)
from otel_llm.stack.run import STATE_DIR_ENV
from otel_llm.traces import Trace, from_jaeger
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

OTEL_LLM = str(Path(sys.executable).with_name("otel-llm"))
OPENAI, BEDROCK = (PROVIDER_MODELS[name] for name in ("openai", "aws.bedrock"))
OPENAI_ARM, BEDROCK_ARM = (f"{spec.provider}:{spec.model}" for spec in (OPENAI, BEDROCK))
INTENT_DELAY_MS = 350  # the general intent's whole response stays well under its 1 s P50 on a busy box
STAGES = "2s:3,14s:3"  # about 45 requests in 16 s; 3 users keep the shared 2-core box from stalling XADDs
INTENT_TAG = "langsmith.metadata.intent"
SLOS = {slo.name: slo for slo in load_slos()}


@pytest.fixture(scope="module")
def load_run(stack, tmp_path_factory):
    """(report, chart path, raw traces, process) of one load run, the Bedrock arm's intent node slowed."""
    directory = tmp_path_factory.mktemp("load")
    experiment_id = f"load-{uuid.uuid4().hex[:8]}"
    env = {
        "OTEL_LLM_EXPERIMENT_ID": experiment_id,
        "OTEL_LLM_EXPERIMENT_ARMS": f"{OPENAI_ARM}=50,{BEDROCK_ARM}=50",
        "OTEL_LLM_DEMO_LATENCY_MS": "10",
        "OTEL_LLM_DEMO_TTFT_MS": "3",
        provider_variable(provider_variable(NODE_DELAY_ENV, "intent"), BEDROCK.provider): str(
            INTENT_DELAY_MS
        ),
    }
    chart = directory / "slo.png"
    # --reference-app on the session's stack, found through its recorded state like `otel-llm stack up`'s.
    env[STATE_DIR_ENV] = str(stack.runner.state_dir)
    result = subprocess.run(
        [
            OTEL_LLM,
            "load",
            "--reference-app",
            "--stages",
            STAGES,
            "--seed",
            "16",
            "--settle",
            "60s",
            "--stable",
            "3s",
            "--json",
            "--chart",
            str(chart),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode in (0, 1) and result.stdout.startswith("{"), result.stderr
    report = json.loads(result.stdout)
    traces = worker_traces(stack, experiment_id, sum(report["accepted_by_intent"].values()))
    return report, chart, traces, result


def worker_traces(stack, experiment_id: str, jobs: int) -> list[Trace]:
    """The run's worker traces from Jaeger, once every job's LangGraph run is there."""
    client = JaegerClient(stack.jaeger_query_url)

    def complete():
        now_us = time.time_ns() // 1000
        raw = client.find_traces(
            WORKER_SERVICE, now_us - 15 * 60 * 1_000_000, now_us, 1000, {EXPERIMENT_ID: experiment_id}, 0
        )
        traces = from_jaeger({"data": raw})
        runs = sum(len(trace.named(OPERATION_INVOKE_WORKFLOW)) for trace in traces)
        return traces if runs == jobs else None

    return poll(complete, timeout=90, message=f"{jobs} worker traces of {experiment_id} in Jaeger")


def verdict_map(report) -> dict[tuple[str, str], dict]:
    return {(v["slo"], v["arm"]): v for v in report["verdicts"]}


def test_exactly_the_slowed_node_and_arm_fail(load_run):
    """The intent node slowed on the Bedrock arm: intent classification fails there and only there, naming the
    intent node and the Bedrock model beneath it; the run reached the app without failed checks, and the
    progress lines showed the stages' 3 users and a rate."""
    report, _, _, result = load_run
    assert result.returncode == 1
    assert report["failures"] == 0 and report["requests"] > 20 and report["settled"] is True
    progress = re.findall(r"users\s+(\d+)\s+([\d.]+) req/s\s+requests\s+(\d+)\s+errors 0", result.stderr)
    assert progress and max(int(users) for users, _, _ in progress) == 3, result.stderr
    assert int(progress[-1][2]) > 0 and max(float(rate) for _, rate, _ in progress) > 0
    assert set(report["accepted_by_intent"]) == {"waste", "character", "bulk_waste", "general"}
    failing = [v for v in report["verdicts"] if not v["ok"]]
    assert [(v["slo"], v["arm"]) for v in failing] == [("intent_classification", BEDROCK_ARM)], failing
    (verdict,) = failing
    assert verdict["passed"]["p50"] is False and verdict["measured_ms"]["p50"] > INTENT_DELAY_MS * 0.9
    assert verdict["slowest_node"] == "intent"
    assert (verdict["provider"], verdict["model"]) == (BEDROCK.provider, BEDROCK.model)


def test_unslowed_arm_meets_every_slo(load_run):
    """The control: the OpenAI arm of the same run, without the slowdown, passes all five SLO rows."""
    verdicts = verdict_map(load_run[0])
    for name in SLOS:
        assert verdicts[(name, OPENAI_ARM)]["ok"] is True, verdicts[(name, OPENAI_ARM)]
    assert {arm for _, arm in verdicts} == {OPENAI_ARM, BEDROCK_ARM}


def _within(durations_ms: list[float], slo_name: str) -> dict[str, int]:
    targets = SLOS[slo_name].targets_ms
    return {p: sum(1 for d in durations_ms if d <= targets[p]) for p in PERCENTILES}


def test_verdict_counts_equal_the_raw_spans(load_run):
    """Per arm, the verdicts' counts (observations, and those within each target) equal what the intent node
    spans and the whole-response spans per intent in Jaeger say."""
    report, _, traces, _ = load_run
    verdicts = verdict_map(report)
    spans = [span for trace in traces for span in trace.spans]
    for arm in (OPENAI_ARM, BEDROCK_ARM):
        of_arm = [span for span in spans if span.attributes.get(EXPERIMENT_ARM) == arm]
        rows = {
            "intent_classification": [
                s for s in of_arm if s.name == "intent" and s.attributes.get(LANGGRAPH_NODE) == "intent"
            ],
            "response_waste": [
                s
                for s in of_arm
                if s.name == OPERATION_INVOKE_WORKFLOW and s.attributes.get(INTENT_TAG) == "waste"
            ],
            "response_general": [
                s
                for s in of_arm
                if s.name == OPERATION_INVOKE_WORKFLOW and s.attributes.get(INTENT_TAG) == "general"
            ],
        }
        for name, row_spans in rows.items():
            durations = [span.duration_us / 1000 for span in row_spans]
            verdict = verdicts[(name, arm)]
            assert verdict["count"] == len(durations) > 0, (name, arm)
            assert verdict["within_target"] == _within(durations, name), (name, arm)
    intents = Counter(
        span.attributes.get(INTENT_TAG) for span in spans if span.name == OPERATION_INVOKE_WORKFLOW
    )
    # bulk_waste messages classify as waste in the reference app
    assert set(intents) == {"waste", "character", "general"}


def test_session_ids_per_user_and_iteration(load_run):
    """Every job's trace carries the session `session-<user>-<iteration>`, each once, the 3 users' iterations
    numbered from 0 without a gap (the Eco2 agent's `session-${__VU}-${__ITER}`)."""
    _, _, traces, _ = load_run
    sessions = [
        next(span.attributes[SESSION_ID] for span in trace.spans if SESSION_ID in span.attributes)
        for trace in traces
    ]
    assert len(set(sessions)) == len(sessions) == len(traces)
    iterations: dict[int, set[int]] = {}
    for session in sessions:
        user, iteration = re.fullmatch(r"session-(\d+)-(\d+)", session).groups()
        iterations.setdefault(int(user), set()).add(int(iteration))
    assert sorted(iterations) == [1, 2, 3]
    assert all(numbers == set(range(len(numbers))) for numbers in iterations.values()), iterations


def test_chart_is_a_png(load_run):
    """--chart writes the PNG of the verdicts."""
    assert load_run[1].read_bytes()[:4] == b"\x89PNG"
