"""Malformed standard OTEL_* variables: one warning naming each, the SDK's default used, no exception from
importing or configuring otel-llm."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_llm.environment import STANDARD_VARIABLES, check_standard_variables
from otel_llm.settings import reset_warnings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# Bad values per variable: each must be removed with one warning.
BAD_VALUES: dict[str, tuple[str, ...]] = {
    "OTEL_PROPAGATORS": ("bogus", ",,,", "tracecontext,bogus"),
    "OTEL_TRACES_EXPORTER": ("bogus", "otlp,bogus"),
    "OTEL_METRICS_EXPORTER": ("bogus",),
    "OTEL_LOGS_EXPORTER": ("bogus",),
    "OTEL_TRACES_SAMPLER": ("bogus",),
    "OTEL_TRACES_SAMPLER_ARG": ("abc", "5", "-0.1", "nan"),
    "OTEL_PYTHON_ID_GENERATOR": ("bogus",),
    "OTEL_PYTHON_TRACER_CONFIGURATOR": ("bogus",),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("bogus", "http/json"),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": ("bogus",),
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": ("bogus",),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("not a url", "http://[::1", "ftp://host:1", "http://host:99999"),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("not a url",),
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ("://",),
    "OTEL_EXPORTER_OTLP_HEADERS": ("api-key", "=value"),
    "OTEL_EXPORTER_OTLP_TIMEOUT": ("abc", "-1", "inf"),
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": ("abc",),
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": ("abc",),
    "OTEL_EXPORTER_OTLP_COMPRESSION": ("bogus",),
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": ("bogus",),
    "OTEL_RESOURCE_ATTRIBUTES": ("=,,a", "no-equals"),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("abc", "0", "-1", "1"),  # 1: below the default export batch size
    "OTEL_BSP_SCHEDULE_DELAY": ("abc", "0"),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("abc", "0", "999999999"),
    "OTEL_BSP_EXPORT_TIMEOUT": ("abc", "-1"),
    "OTEL_METRIC_EXPORT_INTERVAL": ("abc", "0"),
    "OTEL_METRIC_EXPORT_TIMEOUT": ("abc", "-1"),
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("abc",),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("abc", "-1"),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("abc",),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("abc",),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("abc",),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("abc",),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("abc",),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("abc",),
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": ("maybe",),
    "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": ("maybe",),
    "OTEL_CONFIG_FILE": ("/nonexistent/otel.yaml",),
}
# Listed in docs/configuration.md but not checked: free-form, or read by the launcher before otel-llm runs.
NOT_CHECKED = {"OTEL_SERVICE_NAME", "OTEL_SEMCONV_STABILITY_OPT_IN", "OTEL_PYTHON_DISTRO",
               "OTEL_PYTHON_CONFIGURATOR", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"}
GOOD_VALUES = {
    "OTEL_PROPAGATORS": "tracecontext,baggage", "OTEL_TRACES_EXPORTER": "otlp,console",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:4317",
    "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc,x=", "OTEL_RESOURCE_ATTRIBUTES": "team=llm",
    "OTEL_BSP_MAX_QUEUE_SIZE": "32768", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
    "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
}


@pytest.fixture(autouse=True)
def fresh_warnings():
    reset_warnings()
    yield
    reset_warnings()


def documented_standard_variables() -> set[str]:
    names = set(re.findall(r"`(OTEL_[A-Z_]+)`", DOCS.read_text()))
    return {name for name in names if not name.startswith("OTEL_LLM_")}


def test_every_documented_standard_variable_is_checked_or_said_not_to_be():
    """Each OTEL_* variable docs/configuration.md lists has bad values tested here, or is said unchecked."""
    assert documented_standard_variables() - NOT_CHECKED <= set(BAD_VALUES)
    assert set(BAD_VALUES) == set(STANDARD_VARIABLES)


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in BAD_VALUES.items() for v in values])
def test_a_bad_value_is_removed_with_one_warning_naming_the_variable(name, value, caplog):
    """The bad variable leaves the environment (the SDK default applies) with one warning naming it."""
    environ = {name: value}
    with caplog.at_level(logging.WARNING, logger="otel_llm.settings"):
        assert check_standard_variables(environ) == [name]
        check_standard_variables({name: value})  # a second check: no second warning
    assert environ == {}
    warnings = [record.getMessage() for record in caplog.records if name in record.getMessage()]
    assert len(warnings) == 1
    assert "accepts" in warnings[0]


def test_good_values_are_kept_silently(caplog):
    """Valid values stay as they are and nothing is logged."""
    environ = {name: value for name, value in GOOD_VALUES.items() if name in STANDARD_VARIABLES}
    kept = dict(environ)
    with caplog.at_level(logging.WARNING):
        assert check_standard_variables(environ) == []
    assert environ == kept and caplog.records == []


def test_headers_and_endpoints_are_never_repeated_in_the_warning(caplog):
    """A malformed OTEL_EXPORTER_OTLP_HEADERS may hold an API key: the warning does not show the value."""
    with caplog.at_level(logging.WARNING):
        check_standard_variables({"OTEL_EXPORTER_OTLP_HEADERS": "sk-secret-key",
                                  "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:sk-secret@[::1"})
    assert len(caplog.records) == 2
    assert all("sk-secret" not in record.getMessage() for record in caplog.records)


def test_import_and_configure_survive_every_bad_variable_at_once(tmp_path):
    """With every variable malformed, ``import otel_llm`` and ``configure()`` raise nothing, build the
    pipeline, and each variable is named in exactly one warning."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environ.update({name: values[0] for name, values in BAD_VALUES.items()})
    script = (
        "import logging, os, sys\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "import otel_llm\n"
        "telemetry = otel_llm.configure()\n"
        "tracer = telemetry.tracer_provider.get_tracer('t')\n"
        "tracer.start_span('ok').end()\n"
        "print('CONFIGURED', type(telemetry.tracer_provider).__name__, flush=True)\n"
        "os._exit(0)  # no shutdown: the exporters would wait for a collector that is not there\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CONFIGURED TracerProvider" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Invalid value")]
    for name in BAD_VALUES:
        assert len([line for line in warnings if f" for {name};" in line]) == 1, name
