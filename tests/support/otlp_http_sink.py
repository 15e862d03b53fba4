"""A local OTLP/HTTP receiver for traces and metrics (``/v1/traces``, ``/v1/metrics``; protobuf, gzip ok).

Stands in for a collector in tests that run an app with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing here.
Listens on 127.0.0.1 on a random port until ``close()``; decoded requests are kept in arrival order.
"""

from __future__ import annotations

import gzip
import threading
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.local_http import LocalHTTPServer, QuietHandler

_SIGNALS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def attributes_of(key_values: Any) -> dict[str, Any]:
    """An OTLP KeyValue list as a dict of plain Python values (arrays as tuples)."""
    return {item.key: _plain(item.value) for item in key_values}


def _plain(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_plain(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


class OtlpHttpSink:
    """Records every OTLP/HTTP export it receives; set OTEL_EXPORTER_OTLP_ENDPOINT to ``endpoint``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, list[Any]] = {path: [] for path in _SIGNALS}
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request_type, response_type = _SIGNALS.get(self.path, (None, None))
                if request_type is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                sink._record(self.path, request_type.FromString(body))
                self.reply(200, "application/x-protobuf", response_type().SerializeToString())

        self._http = LocalHTTPServer(Handler, "otlp-sink")

    @property
    def endpoint(self) -> str:
        return self._http.url

    def _record(self, path: str, request: Any) -> None:
        with self._lock:
            self._received[path].append(request)

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received so far."""
        with self._lock:
            requests = list(self._received["/v1/traces"])
        return [(attributes_of(rs.resource.attributes), span) for request in requests
                for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def metric_requests(self) -> list[Any]:
        """Every ExportMetricsServiceRequest received so far, in arrival order."""
        with self._lock:
            return list(self._received["/v1/metrics"])

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
        """(resource attributes, point attributes, point) for every data point of metric ``name`` so far."""
        requests = self.metric_requests()
        found = []
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        data = getattr(metric, metric.WhichOneof("data"))
                        for point in data.data_points:
                            resource = attributes_of(rm.resource.attributes)
                            found.append((resource, attributes_of(point.attributes), point))
        return found

    def close(self) -> None:
        self._http.close()
