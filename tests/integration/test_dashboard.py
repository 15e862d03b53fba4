"""The Grafana dashboard: every panel's PromQL parses (promtool) and returns series from the real Prometheus
after the reference app served an experiment's traffic on the stack."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from otel_llm.demo.models import PROVIDER_MODELS
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll
from tests.support.queries import prometheus_query

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "otel-llm-dashboard.json"
REQUESTS = 12
ARMS = ",".join(f"{spec.provider}:{spec.model}=50" for spec in PROVIDER_MODELS.values())


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


@pytest.fixture(scope="module")
def demo_traffic(stack, tmp_path_factory):
    """The reference app in a two-arm experiment, running while the module's tests query Prometheus."""
    experiment_id = f"dash-{uuid.uuid4().hex[:8]}"
    env = {"OTEL_LLM_EXPERIMENT_ID": experiment_id, "OTEL_LLM_EXPERIMENT_ARMS": ARMS}
    bodies = [
        ("How do I recycle a plastic bottle?", f"{experiment_id}-{i}", f"user-{i}") for i in range(REQUESTS)
    ]
    with ReferenceApp(stack, tmp_path_factory.mktemp("dashboard") / "app.log", env=env) as app:
        yield app.load(bodies, concurrency=4)


@pytest.mark.parametrize(
    ("title", "expr"), dashboard_queries(), ids=[title for title, _ in dashboard_queries()]
)
def test_expression_returns_series_after_demo_traffic(stack, demo_traffic, title, expr):
    """The panel's query returns at least one series from Prometheus holding the app's metrics."""
    poll(
        lambda: prometheus_query(stack.prometheus_url, expr),
        timeout=90,
        message=f"series for panel {title!r}: {expr}",
    )
