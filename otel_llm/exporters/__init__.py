"""Span exporters of otel-llm: METRIC| log lines (``metric_log``)."""

from otel_llm.exporters.metric_log import MetricLogExporter, exporter_from_env

__all__ = ["MetricLogExporter", "exporter_from_env"]
