"""otel_llm.stack.prometheus: rendering the Prometheus config template (promtool checks the result in
tests/integration/test_configs.py)."""

from __future__ import annotations

import pytest
import yaml

from otel_llm.stack import paths
from otel_llm.stack.prometheus import TEMPLATE_DEFAULTS, render_prometheus_config, write_prometheus_config


def _targets(config: dict) -> dict[str, list[str]]:
    return {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}


class TestRender:
    def test_defaults_fill_every_placeholder(self):
        """With an empty environment every placeholder gets its documented default and no `$` is left."""
        text = render_prometheus_config({})
        config = yaml.safe_load(text)
        interval = TEMPLATE_DEFAULTS["OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL"]
        assert config["global"]["scrape_interval"] == interval
        assert _targets(config)["otel-llm-collector"] == ["127.0.0.1:8889"]
        assert "${" not in text

    def test_environment_sets_ports_and_interval(self):
        """The collector's exporter and telemetry ports and the interval come from the variables."""
        config = yaml.safe_load(render_prometheus_config({
            "OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT": "41001",
            "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT": "41002",
            "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": "1s"}))
        assert _targets(config) == {"otel-llm-collector": ["127.0.0.1:41001"],
                                    "otel-llm-collector-internal": ["127.0.0.1:41002"]}
        assert config["global"]["evaluation_interval"] == "1s"

    def test_gateway_topology_scrapes_every_gateway_and_collector(self):
        """The gateway topology's ports add targets: both gateways' span metrics, all four's own."""
        config = yaml.safe_load(render_prometheus_config({
            "OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT": "41001",
            "OTEL_LLM_STACK_GATEWAY2_PROMETHEUS_PORT": "41003",
            "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT": "41002",
            "OTEL_LLM_STACK_GATEWAY1_TELEMETRY_PORT": "41004",
            "OTEL_LLM_STACK_GATEWAY2_TELEMETRY_PORT": "41005",
            "OTEL_LLM_STACK_AGENT2_TELEMETRY_PORT": "41006",
            "OTEL_LLM_STACK_AGENT2_OTLP_GRPC_PORT": "41007"}))
        assert _targets(config) == {
            "otel-llm-collector": ["127.0.0.1:41001", "127.0.0.1:41003"],
            "otel-llm-collector-internal": ["127.0.0.1:41002", "127.0.0.1:41006", "127.0.0.1:41004",
                                            "127.0.0.1:41005"]}

    def test_rule_files_are_absolute(self):
        """Rule files point into the repository by absolute path, wherever the rendered file is written."""
        config = yaml.safe_load(render_prometheus_config({}))
        assert config["rule_files"] == [f"{paths.PROMETHEUS_RULES_DIR}/*.yml"]
        assert paths.PROMETHEUS_RULES_DIR.is_absolute()

    @pytest.mark.parametrize(("variable", "value"), [
        ("OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT", "88a9"),
        ("OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT", "-1"),
        ("OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL", "2 seconds"),
        ("OTEL_LLM_STACK_GATEWAY2_PROMETHEUS_PORT", "x"),
    ])
    def test_invalid_value_names_the_variable(self, variable, value):
        """A value Prometheus could not load raises ValueError naming the variable and the rule."""
        with pytest.raises(ValueError, match=variable):
            render_prometheus_config({variable: value})

    def test_write_creates_parents(self, tmp_path):
        """write_prometheus_config writes the rendered text, creating the state directory."""
        destination = write_prometheus_config(tmp_path / "state" / "prometheus.yml", {})
        assert destination.read_text() == render_prometheus_config({})
