"""The generated Grafana dashboard: the committed JSON is the generator's output, and its structure is one
Grafana imports (data source variable, unique panel ids, panels on the grid without overlap, every variable
used is defined). Its queries run against the real Prometheus in tests/integration/test_dashboard.py."""

from __future__ import annotations

import json
import re
from itertools import combinations

import pytest
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel

from otel_llm.dashboard import queries
from otel_llm.dashboard.__main__ import main
from otel_llm.dashboard.build import render
from otel_llm.dashboard.panels import requests_section
from otel_llm.stack.paths import DASHBOARD, PROMETHEUS_RULES_DIR, REPO_ROOT

RULE_FILES = sorted(PROMETHEUS_RULES_DIR.glob("*.yml"))
DOC = REPO_ROOT / "docs" / "dashboard.md"
VARIABLE_USE = re.compile(r"\$(\w+)")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


class TestCommittedFile:
    def test_committed_json_is_the_generator_output(self):
        """grafana/otel-llm-dashboard.json is exactly what `python -m otel_llm.dashboard --write` writes."""
        assert DASHBOARD.read_text() == render(RULE_FILES)

    def test_check_passes_on_the_committed_file(self, capsys):
        """`python -m otel_llm.dashboard --check` exits 0 and says so."""
        assert main(["--check"]) == 0
        assert "current" in capsys.readouterr().out

    def test_check_fails_on_a_stale_file(self, tmp_path, monkeypatch, capsys):
        """A hand edit makes --check exit 1 and name the command that regenerates the file."""
        stale = tmp_path / "dashboard.json"
        stale.write_text(DASHBOARD.read_text().replace("Active streams", "Active stream"))
        monkeypatch.setattr("otel_llm.dashboard.__main__.DASHBOARD", stale)
        assert main(["--check"]) == 1
        assert "python -m otel_llm.dashboard --write" in capsys.readouterr().out

    def test_the_sdk_decodes_the_committed_json(self, dashboard):
        """The SDK's own model reads the file back with every panel and variable."""
        register_default_plugins()
        model = DashboardModel.from_json(dashboard)
        assert len(model.panels) == len(dashboard["panels"])
        assert [v.name for v in model.templating.list_val] == [
            "datasource",
            *(v.name for v in queries.VARIABLES),
        ]


class TestStructure:
    def test_every_panel_and_query_reads_the_datasource_variable(self, dashboard):
        """A `datasource` variable of Prometheus data sources; every panel and query points at it."""
        first = dashboard["templating"]["list"][0]
        assert (first["type"], first["name"], first["query"]) == ("datasource", "datasource", "prometheus")
        reference = {"type": "prometheus", "uid": "${datasource}"}
        for panel in panels(dashboard):
            assert panel["datasource"] == reference, panel["title"]
            assert panel["targets"] and all(t["datasource"] == reference for t in panel["targets"]), panel[
                "title"
            ]
        assert "__inputs" not in dashboard

    def test_panel_ids_are_unique(self, dashboard):
        """Rows included: Grafana links and edits panels by id."""
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))

    def test_panels_do_not_overlap_and_fit_the_grid(self, dashboard):
        """No two panels share a grid cell; every panel lies within the 24 columns."""
        boxes = [(p["title"], p["gridPos"]) for p in dashboard["panels"]]
        for title, box in boxes:
            assert box["x"] >= 0 and box["x"] + box["w"] <= 24 and box["h"] > 0, title
        for (title_a, a), (title_b, b) in combinations(boxes, 2):
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, (title_a, title_b)

    def test_every_variable_used_is_defined_before_its_use(self, dashboard):
        """Panels use only defined variables; a variable's query only variables above it."""
        defined: list[str] = []
        for variable in dashboard["templating"]["list"]:
            assert set(VARIABLE_USE.findall(str(variable.get("query", "")))) <= set(defined), variable["name"]
            defined.append(variable["name"])
        for panel in panels(dashboard):
            for target in panel["targets"]:
                assert set(VARIABLE_USE.findall(target["expr"])) <= set(defined), panel["title"]

    def test_filter_variables_are_multi_value_with_all_matching_everything(self, dashboard):
        """All is `.*`, so series without the label (requests outside an experiment) stay in the panels."""
        for variable in dashboard["templating"]["list"][1:]:
            assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*", variable[
                "name"
            ]

    def test_titles_are_unique_and_documented(self, dashboard):
        """Every panel title appears once in the dashboard and in docs/dashboard.md."""
        titles = [panel["title"] for panel in panels(dashboard)]
        assert len(titles) == len(set(titles))
        doc = DOC.read_text()
        assert [title for title in titles if title not in doc] == []


class TestAlertPanels:
    def test_every_alert_has_a_panel_with_its_value_and_limit(self, dashboard):
        """One panel per alert rule: the compared expression, and the threshold line or the limit series."""
        by_title = {panel["title"]: panel for panel in panels(dashboard)}
        alerts = [alert for path in RULE_FILES for alert in queries.alert_views(path)]
        assert len(alerts) >= 7
        for alert in alerts:
            panel = by_title[f"Alert {alert.name}"]
            exprs = [target["expr"] for target in panel["targets"]]
            assert exprs[0] == alert.value
            if alert.threshold is None:
                assert exprs[1] == alert.limit
            else:
                steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                assert steps[-1]["value"] == alert.threshold

    def test_value_and_limit_are_split_at_the_comparison(self, tmp_path):
        """A numeric limit is a threshold, `on (...) group_left series` a series; units follow the names."""
        rules = tmp_path / "rules.yml"
        rules.write_text(
            "groups:\n- name: g\n  rules:\n"
            "  - record: r:x\n    expr: vector(1)\n"
            "  - alert: Slow\n    expr: >\n      histogram_quantile(0.95, rate(x_seconds_bucket[5m]))\n"
            "      > 0.5\n"
            "  - alert: OverSlo\n    expr: a:duration_ms:p95 > on (intent) group_left a:duration_ms:slo\n"
        )
        slow, over = queries.alert_views(rules)
        assert (slow.value, slow.threshold, slow.limit, slow.unit) == (
            "histogram_quantile(0.95, rate(x_seconds_bucket[5m]))",
            0.5,
            None,
            "s",
        )
        assert (over.value, over.threshold, over.limit, over.unit) == (
            "a:duration_ms:p95",
            None,
            "a:duration_ms:slo",
            "ms",
        )

    def test_an_alert_without_a_comparison_is_named(self, tmp_path):
        """The generator refuses an alert it cannot draw, naming it."""
        rules = tmp_path / "rules.yml"
        rules.write_text("groups:\n- name: g\n  rules:\n  - alert: Absent\n    expr: absent(up)\n")
        with pytest.raises(ValueError, match="Absent"):
            list(queries.alert_views(rules))


class TestQueries:
    def test_selector_filters_on_every_variable_of_the_family(self):
        """A family's labels become regex matchers on the variables, before the extra matchers."""
        assert queries.GENAI.selector("gen_ai_client_token_usage_sum", 'gen_ai_token_type="input"') == (
            'gen_ai_client_token_usage_sum{job=~"$service", gen_ai_provider_name=~"$provider", '
            'gen_ai_request_model=~"$model", llm_experiment_arm=~"$arm", gen_ai_token_type="input"}'
        )
        assert queries.STREAM.selector("chat_stream_requests_total", 'status="error"') == (
            'chat_stream_requests_total{job=~"$service", llm_experiment_arm=~"$arm", status="error"}'
        )

    def test_a_requests_source_is_one_row_of_rate_errors_and_latency(self):
        """Another Requests entry (span metrics, say) is a row of its own, on its metric names and filters."""
        spans = queries.Requests(
            "Requests",
            "traces_span_metrics_calls_total",
            "traces_span_metrics_duration_milliseconds_bucket",
            "ms",
            failed='status_code="STATUS_CODE_ERROR"',
            where=('span_kind="SPAN_KIND_SERVER"',),
        )
        section = requests_section(spans)
        exprs = [expr for panel in section.panels for expr, _ in panel.targets]
        assert len(section.panels) == 2 + len(queries.QUANTILES)
        assert all('span_kind="SPAN_KIND_SERVER"' in expr and 'job=~"$service"' in expr for expr in exprs)
        assert 'status_code="STATUS_CODE_ERROR"' in exprs[1]
        assert [panel.unit for panel in section.panels[2:]] == ["ms"] * len(queries.QUANTILES)
        assert all("histogram_quantile" in expr for expr in exprs[2:])
