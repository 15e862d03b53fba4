"""A local OTLP/HTTP traces receiver standing in for LangSmith's OTel endpoint (unreachable from here).

It accepts what LangSmith documents: ``POST <base>/otel/v1/traces`` with ``Content-Type:
application/x-protobuf`` (gzip allowed), an ``x-api-key`` header and an optional ``Langsmith-Project`` header.
Every request is recorded as a ``ReceivedRequest`` (path, lower-cased headers, the decoded
``ExportTraceServiceRequest``); a request that does not fit the wire format is recorded too, with
``request=None``, and answered 400 so a test can see the mismatch.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.local_http import LocalHTTPServer, QuietHandler

TRACES_PATH = "/otel/v1/traces"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    request: ExportTraceServiceRequest | None

    def spans(self, service: str | None = None) -> list:
        """The request's spans (only that ``service.name``'s when given); none for a rejected request."""
        if self.request is None:
            return []
        return [span for resource_spans in self.request.resource_spans
                if service is None or _service_name(resource_spans.resource) == service
                for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]


def _service_name(resource) -> str | None:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return attribute.value.string_value
    return None


class OtlpHttpReceiver:
    """Listens on 127.0.0.1 (random port) until ``close()``; ``base_url`` is the LANGSMITH_ENDPOINT to set."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = None
                if self.path == TRACES_PATH and headers.get("content-type") == PROTOBUF:
                    if headers.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = ExportTraceServiceRequest.FromString(body)
                receiver._record(ReceivedRequest(self.path, headers, request))
                reply = ExportTraceServiceResponse().SerializeToString() if request is not None else b""
                self.reply(200 if request is not None else 400, PROTOBUF, reply)

        self._http = LocalHTTPServer(Handler, "otlp-receiver")

    @property
    def base_url(self) -> str:
        return self._http.url

    def _record(self, received: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(received)

    def spans(self, service: str | None = None) -> list:
        """Every span received so far (of that ``service.name`` when given), across requests."""
        with self._lock:
            requests = list(self.requests)
        return [span for received in requests for span in received.spans(service)]

    def close(self) -> None:
        self._http.close()
