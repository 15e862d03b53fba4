"""The Prometheus config of the stack, rendered from ``prometheus/prometheus.yml.tmpl``.

Prometheus 2.42 expands no environment variables in its config file, so the runner renders the template with
the same variables the collector and Jaeger configs read (docs/stack.md) and starts Prometheus on the result.
Rule files are referenced by absolute path, so the rendered file can live anywhere (the runner's state dir).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path

from otel_llm.stack import paths

# Variables of the template that come from the environment, with their defaults (docs/stack.md).
PROMETHEUS_PORT_VARIABLE = "OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT"
TELEMETRY_PORT_VARIABLE = "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT"
TEMPLATE_DEFAULTS: Mapping[str, str] = {
    PROMETHEUS_PORT_VARIABLE: "8889",
    TELEMETRY_PORT_VARIABLE: "8888",
    "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": "2s",
}
# Placeholders filled by the runner, not from a variable of their own (lower case in the template): the rules
# directory, and per port variable the scrape targets: the collector's port plus the same port of every other
# collector of the gateway topology (otel_llm/stack/run.py) found in the environment.
RULES_DIR_PLACEHOLDER = "rules_dir"
TARGETS_PLACEHOLDERS: Mapping[str, str] = {PROMETHEUS_PORT_VARIABLE: "prometheus_targets",
                                           TELEMETRY_PORT_VARIABLE: "telemetry_targets"}


def _tier_ports(port_variable: str) -> re.Pattern[str]:
    """<prefix>_GATEWAY2_PROMETHEUS_PORT, <prefix>_AGENT2_..., for <prefix>_COLLECTOR_PROMETHEUS_PORT."""
    prefix, _, port = port_variable.partition("_COLLECTOR_")
    return re.compile(rf"{re.escape(prefix)}_(?:GATEWAY|AGENT)[0-9]+_{re.escape(port)}")


_RULES: Mapping[str, re.Pattern[str]] = {
    PROMETHEUS_PORT_VARIABLE: re.compile(r"[1-9][0-9]{0,4}"),
    TELEMETRY_PORT_VARIABLE: re.compile(r"[1-9][0-9]{0,4}"),
    "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": re.compile(r"[1-9][0-9]*(ms|s|m)"),
}
_RULE_TEXT = {
    PROMETHEUS_PORT_VARIABLE: "a TCP port number",
    TELEMETRY_PORT_VARIABLE: "a TCP port number",
    "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": "a Prometheus duration such as 2s, 500ms or 1m",
}


def template_values(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's values: each variable from ``env`` (default ``os.environ``) when set, else its default.

    A set but invalid value raises ValueError naming the variable and the rule: a config Prometheus cannot
    load would only fail later, in its log.
    """
    env = os.environ if env is None else env
    values = {}
    for name, default in TEMPLATE_DEFAULTS.items():
        value = str(env.get(name) or default).strip()
        if not _RULES[name].fullmatch(value):
            raise ValueError(f"{name} must be {_RULE_TEXT[name]}, got {value!r}")
        values[name] = value
    for first, placeholder in TARGETS_PLACEHOLDERS.items():
        more = _tier_ports(first)
        ports = [values[first]]
        for name in sorted(env):
            if more.fullmatch(name):
                value = str(env[name]).strip()
                if not _RULES[first].fullmatch(value):
                    raise ValueError(f"{name} must be {_RULE_TEXT[first]}, got {value!r}")
                ports.append(value)
        values[placeholder] = ", ".join(f'"127.0.0.1:{port}"' for port in ports)
    values[RULES_DIR_PLACEHOLDER] = str(paths.PROMETHEUS_RULES_DIR)
    return values


def render_prometheus_config(env: Mapping[str, str] | None = None) -> str:
    """The rendered prometheus.yml text for ``env`` (default ``os.environ``)."""
    template = string.Template(paths.PROMETHEUS_TEMPLATE.read_text())
    return template.substitute(template_values(env))


def write_prometheus_config(destination: Path, env: Mapping[str, str] | None = None) -> Path:
    """Render into ``destination`` (parents created) and return it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(render_prometheus_config(env))
    return destination
