"""Read data points out of an InMemoryMetricReader by metric name (unit-test helper)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader


def metric_points(
    reader: InMemoryMetricReader, name: str, scope: str | None = None
) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) for every point of every metric called ``name``, across scopes (or of the one
    instrumentation ``scope`` when given)."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        (dict(point.attributes), point)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        if scope is None or scope_metrics.scope.name == scope
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]
