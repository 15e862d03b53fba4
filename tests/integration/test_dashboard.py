"""The Grafana dashboard: every panel's PromQL parses (promtool); every variable's query lists this test's run
and every panel's query, with the variables set to those values, returns data of the run from the real
Prometheus after the reference app served an experiment on the stack.

The run forces what some panels would otherwise only show as a fill-in 0: a provider fallback for the
Bedrock arm (``OTEL_LLM_DEMO_FALLBACK_AWS_BEDROCK=openai``), a failing request per arm
(``OTEL_LLM_DEMO_FAIL_WORD``), a snapshot read and a reconnect with ``Last-Event-ID`` (stream recoveries).
It comes in two waves, the second once Prometheus holds the first, so every counter of the run has increased
within the panels' rate windows. Each query of our SDKs' metrics is scoped to the run's ``llm_experiment_id``
(other tests' data in the shared Prometheus never counts; the alert-rule panels on span metrics and recorded
series cannot be, having no experiment label); per-arm panels must return both arms of the run; values must be
numbers, and positive where the run forced them."""

from __future__ import annotations

import json
import math
import re
import subprocess
import uuid

import pytest
import requests
import yaml

from otel_llm.cli.demo_stack import API_SERVICE, WORKER_SERVICE
from otel_llm.demo.embedded import sessions_covering_arms
from otel_llm.demo.models import FAIL_WORD_ENV, FALLBACK_ENV, PROVIDER_MODELS, provider_variable
from otel_llm.experiment import Experiment, parse_arms
from otel_llm.stack.paths import DASHBOARD
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll
from tests.support.queries import prometheus_query

pytestmark = pytest.mark.integration

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
    "LLM calls: error ratio by provider/model/arm": {OPENAI_ARM, BEDROCK_ARM},
    "Requests: error ratio by provider/model/arm": {OPENAI_ARM, BEDROCK_ARM},
    "Fallbacks/sec by arm": {BEDROCK_ARM},
}
RECOVERY_PANEL = "Recovery attempts"
PER_ARM = re.compile(rf"\bby \([^)]*\b{ARM_LABEL}\b")
VARIABLE = re.compile(r"\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), (?P<label>\w+)\)$")
REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|{}\[\]]")


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with the dashboard's variables) for every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", ())]


def dashboard_variables() -> list[tuple[str, str, str]]:
    """(name, selector, label) of each ``label_values`` query variable, in the dashboard's order."""
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    parsed = [(v["name"], LABEL_VALUES.match(v["query"])) for v in variables if v["type"] == "query"]
    assert all(match for _, match in parsed), parsed
    return [(name, match["selector"], match["label"]) for name, match in parsed]


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana's Prometheus data source puts it into a regex matcher: ``(a|b)``
    with regex characters escaped for a PromQL string."""
    return "(" + "|".join(REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value) for value in values) + ")"


def substituted(expr: str, values: dict[str, list[str]]) -> str:
    return VARIABLE.sub(lambda match: grafana_regex(values[match.group(1)]), expr)


def test_grafana_regex_escapes_like_grafana():
    """Dots and colons of arm names: a dot is escaped (twice, inside a PromQL string), a colon is not."""
    assert grafana_regex(["openai:gpt-4o-mini", "aws.bedrock"]) == '(openai:gpt-4o-mini|aws\\\\.bedrock)'
    assert substituted('x{a=~"$arm"}', {"arm": ["p:m"]}) == 'x{a=~"(p:m)"}'


def test_dashboard_has_the_seed_panels_and_the_variables():
    """The JSON has a title, the Eco2 agent's section 6 metrics, and service/provider/model/arm variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"]
    assert [name for name, _, _ in dashboard_variables()] == ["service", "provider", "model", "arm"]
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
        self.variables: dict[str, list[str]] = {}
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

    def query(self, expr: str, variables: dict[str, list[str]] | None = None) -> list[dict]:
        """``expr`` scoped to this run, with the variables set to ``variables`` (default: the values their
        queries returned)."""
        return prometheus_query(self.stack.prometheus_url, self.runnable(expr, variables))

    def runnable(self, expr: str, variables: dict[str, list[str]] | None = None) -> str:
        values = self.variables if variables is None else variables
        return scoped(substituted(expr, values), self.experiment_id)

    def resolve_variables(self) -> dict[str, list[str]]:
        """Each variable's values, as Grafana lists them: its ``label_values`` query (series of this run),
        the variables above it set to all of their values."""
        self.variables = {}
        for name, selector, label in dashboard_variables():
            if selector.startswith("{"):  # metrics by a __name__ regex, which `scoped` would rewrite inside
                selector = f'{selector[:-1]}, llm_experiment_id="{self.experiment_id}"}}'
                query = substituted(f"count by ({label}) ({selector})", self.variables)
                series = prometheus_query(self.stack.prometheus_url, query)
            else:
                series = self.query(f"count by ({label}) ({selector})")
            self.variables[name] = sorted({r["metric"][label] for r in series if r["metric"].get(label)})
        return self.variables

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
        traffic.resolve_variables()
        yield traffic


def test_variables_list_the_values_of_this_run(traffic):
    """Scoped to this run, the variables list the API (recoveries) and the worker (LLM calls, streams), both
    arms, and the provider and model that served the calls: OpenAI's alone, since the run makes the Bedrock
    arm's calls fall back to it (providers are who served a call, arms what the request was assigned)."""
    openai = PROVIDER_MODELS["openai"]
    assert traffic.variables == {
        "service": sorted([API_SERVICE, WORKER_SERVICE]),
        "provider": [openai.provider],
        "model": [openai.model],
        "arm": sorted([OPENAI_ARM, BEDROCK_ARM]),
    }


def panel_problem(traffic: ExperimentTraffic, title: str, expr: str) -> str | None:
    """What is still missing from the panel's data of this run, or None when it is all there."""
    result = traffic.query(expr)
    values = [float(series["value"][1]) for series in result]
    if not result or any(math.isnan(value) for value in values):
        return f"series {[(r['metric'], r['value'][1]) for r in result]}"
    if PER_ARM.search(expr):
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

    message = f"data of this run in panel {title!r}: {traffic.runnable(expr)}; {problems[-1:]}"
    poll(settled, timeout=90, message=message)


def test_choosing_one_arm_narrows_every_per_arm_panel(traffic):
    """With the arm variable set to one arm, each per-arm panel shows that arm only (it showed both above)."""
    one_arm = {**traffic.variables, "arm": [OPENAI_ARM]}
    shown = {
        title: {r["metric"].get(ARM_LABEL) for r in traffic.query(expr, one_arm)}
        for title, expr in dashboard_queries()
        if PER_ARM.search(expr) and "$arm" in expr
    }
    assert len(shown) >= 10 and all(arms == {OPENAI_ARM} for arms in shown.values()), shown
