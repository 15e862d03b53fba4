"""The Grafana dashboard: every panel's PromQL parses (promtool), and returns data of this test's run from the
real Prometheus after the reference app served an experiment on the stack.

The run forces what some panels would otherwise only show as a fill-in 0: a provider fallback for the
Bedrock arm (``OTEL_LLM_DEMO_FALLBACK_AWS_BEDROCK=openai``), a failing request per arm
(``OTEL_LLM_DEMO_FAIL_WORD``), a snapshot read and a reconnect with ``Last-Event-ID`` (stream recoveries).
It comes in two waves, the second once Prometheus holds the first, so every counter of the run has increased
within the panels' rate windows. Each panel's query is scoped to the run's ``llm_experiment_id`` (other
tests' data in the shared Prometheus never counts); per-arm panels must return both arms of the run; values
must be numbers, and positive where the run forced them."""

from __future__ import annotations

import json
import math
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from otel_llm.demo.embedded import sessions_covering_arms
from otel_llm.demo.models import FAIL_WORD_ENV, FALLBACK_ENV, PROVIDER_MODELS, provider_variable
from otel_llm.experiment import Experiment, parse_arms
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll
from tests.support.queries import prometheus_query

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "otel-llm-dashboard.json"
OPENAI_ARM, BEDROCK_ARM = (f"{spec.provider}:{spec.model}" for spec in PROVIDER_MODELS.values())
ARMS = f"{OPENAI_ARM}=50,{BEDROCK_ARM}=50"
ARM_LABEL = "llm_experiment_arm"
FAIL_WORD = "meltdown"
MESSAGE = "How do I recycle a plastic bottle?"
REQUESTS_PER_ARM = 3  # per wave, one of them failing
# The metrics of our SDKs in the panels' PromQL (label names like llm_experiment_arm never start this way).
METRIC_NAME = re.compile(r"\b(chat_stream_\w+|llm_experiment_fallbacks_total|gen_ai_client_\w+)(\{[^}]*\})?")
# Panels whose fill-in gives 0 where the run has no data: the arms where the run forced data (value > 0).
FORCED_POSITIVE = {
    "Stream error ratio by arm": {OPENAI_ARM, BEDROCK_ARM},
    "Fallbacks/sec by arm": {BEDROCK_ARM},
}
RECOVERY_PANEL = "Recovery attempts"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", ())]


def test_dashboard_is_importable_json_with_the_seed_panels():
    """The JSON has a title, a Prometheus data-source input, and the seed's section 6 metrics."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["__inputs"][0]["pluginId"] == "prometheus"
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "chat_stream_active",
        "chat_stream_tokens_total",
        "chat_stream_token_latency_seconds_bucket",
        "chat_stream_duration_seconds_bucket",
        "chat_stream_token_count_bucket",
        "chat_stream_recovery_total",
        "llm_experiment_arm",
    ):
        assert metric in exprs, metric


def test_every_expression_parses(stack_binaries, tmp_path):
    """promtool accepts every panel expression (as recording rules)."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{index}", "expr": expr}
                    for index, (_, expr) in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [str(stack_binaries.promtool), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def scoped(expr: str, experiment_id: str) -> str:
    """``expr`` with every selector of our metrics also matching ``llm_experiment_id``."""

    def add_matcher(match: re.Match) -> str:
        matchers = [m for m in ((match.group(2) or "{}")[1:-1], f'llm_experiment_id="{experiment_id}"') if m]
        return f"{match.group(1)}{{{', '.join(matchers)}}}"

    return METRIC_NAME.sub(add_matcher, expr)


def test_scoping_adds_the_matcher_to_every_metric_selector():
    """Selectors with and without matchers get the experiment matcher; label names are left alone."""
    expr = 'sum by (llm_experiment_arm) (rate(chat_stream_requests_total{status="error"}[5m])) / sum(x_total)'
    assert scoped(expr, "e1") == (
        'sum by (llm_experiment_arm) (rate(chat_stream_requests_total{status="error", '
        'llm_experiment_id="e1"}[5m])) / sum(x_total)'
    )
    assert scoped("sum(chat_stream_active)", "e1") == 'sum(chat_stream_active{llm_experiment_id="e1"})'
    every_query = " ".join(expr for _, expr in dashboard_queries())
    assert set(METRIC_NAME.findall(every_query)) and "vector(" not in every_query


class ExperimentTraffic:
    """The reference app in one experiment: waves of requests and recoveries; what Prometheus holds."""

    def __init__(self, app: ReferenceApp, stack, experiment_id: str) -> None:
        self.app, self.stack, self.experiment_id = app, stack, experiment_id
        experiment = Experiment(experiment_id, parse_arms(ARMS))
        self.sessions = sessions_covering_arms(experiment, 2 * REQUESTS_PER_ARM)  # openai, bedrock, ...

    def wave(self, number: int) -> list[dict]:
        """REQUESTS_PER_ARM requests per arm, the last of each failing; a snapshot read and a catch-up."""
        failing = self.sessions[-2:]
        bodies = [
            (f"{MESSAGE} {FAIL_WORD}" if session in failing else MESSAGE, session, f"user-{number}")
            for session in self.sessions
        ]
        jobs = self.app.load(bodies, concurrency=4)
        statuses = [(job["provider"], job["status"]) for job in jobs]
        assert statuses.count(("openai", "error")) == statuses.count(("aws.bedrock", "error")) == 1, statuses
        assert statuses.count(("openai", "done")) == statuses.count(("aws.bedrock", "done")) == 2, statuses
        done = [job for job in jobs if job["status"] == "done"]
        snapshot = requests.get(f"{self.app.api_url}/{done[0]['job_id']}", timeout=10)
        assert snapshot.json()["status"] == "done"
        with requests.get(
            f"{self.app.api_url}/{done[1]['job_id']}/stream", headers={"Last-Event-ID": "2"}, timeout=30
        ) as caught_up:
            events = [line for line in caught_up.text.splitlines() if line.startswith("event: ")]
        assert events[-1] == "event: done" and len(events) == done[1]["tokens"] - 2 + 1
        return jobs

    def query(self, expr: str) -> list[dict]:
        return prometheus_query(self.stack.prometheus_url, scoped(expr, self.experiment_id))

    def holds_every_metric(self) -> bool:
        """Prometheus has a series of this experiment for every metric the dashboard reads, of both arms
        (the fallback counter: of the Bedrock arm), errors of both arms, and both kinds of recovery."""
        names = {name for _, expr in dashboard_queries() for name, _ in METRIC_NAME.findall(expr)}
        for name in names:
            arms = {r["metric"].get(ARM_LABEL) for r in self.query(f"count by ({ARM_LABEL}) ({name})")}
            fallbacks_only = name.startswith("llm_experiment_fallbacks")
            wanted = {BEDROCK_ARM} if fallbacks_only else {OPENAI_ARM, BEDROCK_ARM}
            if not wanted <= arms:
                return False
        errors = self.query(f'count by ({ARM_LABEL}) (chat_stream_requests_total{{status="error"}})')
        recoveries = self.query("count by (type) (chat_stream_recovery_total)")
        return len(errors) == 2 and {r["metric"]["type"] for r in recoveries} == {"catch_up", "snapshot"}


@pytest.fixture(scope="module")
def traffic(stack, tmp_path_factory):
    """Two waves of the experiment, the second once Prometheus holds the first; the app keeps running."""
    experiment_id = f"dash-{uuid.uuid4().hex[:8]}"
    env = {
        "OTEL_LLM_EXPERIMENT_ID": experiment_id,
        "OTEL_LLM_EXPERIMENT_ARMS": ARMS,
        provider_variable(FALLBACK_ENV, "aws.bedrock"): "openai",
        FAIL_WORD_ENV: FAIL_WORD,
    }
    with ReferenceApp(stack, tmp_path_factory.mktemp("dashboard") / "app.log", env=env) as app:
        traffic = ExperimentTraffic(app, stack, experiment_id)
        traffic.wave(1)
        poll(traffic.holds_every_metric, timeout=90, message=f"each dashboard metric of {experiment_id}")
        traffic.wave(2)
        yield traffic


def panel_problem(traffic: ExperimentTraffic, title: str, expr: str) -> str | None:
    """What is still missing from the panel's data of this run, or None when it is all there."""
    result = traffic.query(expr)
    values = [float(series["value"][1]) for series in result]
    if not result or any(math.isnan(value) for value in values):
        return f"series {[(r['metric'], r['value'][1]) for r in result]}"
    if f"{ARM_LABEL})" in expr or f"{ARM_LABEL}," in expr:
        by_arm = {r["metric"].get(ARM_LABEL): value for r, value in zip(result, values, strict=True)}
        if set(by_arm) != {OPENAI_ARM, BEDROCK_ARM}:
            return f"arms {by_arm}"
        if any(by_arm[arm] <= 0 for arm in FORCED_POSITIVE.get(title, ())):
            return f"forced arms not positive: {by_arm}"
    if title == RECOVERY_PANEL:
        positive = {
            (r["metric"]["type"], r["metric"]["status"]) for r, v in zip(result, values, strict=True) if v > 0
        }
        if positive != {("catch_up", "success"), ("snapshot", "success")}:
            return f"recoveries {positive}"
    return None


@pytest.mark.parametrize(
    ("title", "expr"), dashboard_queries(), ids=[title for title, _ in dashboard_queries()]
)
def test_panel_shows_data_of_this_run(traffic, title, expr):
    """The panel's query, scoped to this run's experiment, returns numbers (per-arm panels: both arms;
    positive where the run forced errors, fallbacks and recoveries)."""
    problems: list[str | None] = []

    def settled() -> bool:
        problems.append(panel_problem(traffic, title, expr))
        return problems[-1] is None

    scoped_expr = scoped(expr, traffic.experiment_id)
    poll(settled, timeout=90, message=f"data of this run in panel {title!r}: {scoped_expr}; {problems[-1:]}")
