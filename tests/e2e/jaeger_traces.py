"""Jaeger API traces (``/api/traces`` JSON) as a small tree the end-to-end tests can assert on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from otel_llm import semconv


@dataclass
class Span:
    span_id: str
    parent_id: str | None  # the CHILD_OF reference, None for a root
    name: str
    service: str
    kind: str  # server, client, producer, consumer, internal
    tags: dict[str, Any]
    duration_us: int

    @property
    def node(self) -> str | None:
        return self.tags.get(semconv.LANGGRAPH_NODE)

    @property
    def is_llm(self) -> bool:
        return semconv.is_llm_span(self.tags)

    @property
    def scope(self) -> str | None:
        """The instrumentation scope that made the span (``otel.scope.name``)."""
        return self.tags.get("otel.scope.name")

    @property
    def url(self) -> str:
        """An HTTP client span's URL (stable or old HTTP semconv), else ''."""
        return str(self.tags.get("url.full") or self.tags.get("http.url") or "")

    @property
    def is_rpc_or_http(self) -> bool:
        return (
            self.tags.get("rpc.system") == "grpc"
            or "http.request.method" in self.tags
            or "http.method" in self.tags
        )


@dataclass
class Trace:
    trace_id: str
    spans: dict[str, Span] = field(default_factory=dict)

    @classmethod
    def from_jaeger(cls, data: dict[str, Any]) -> Trace:
        services = {pid: process["serviceName"] for pid, process in data["processes"].items()}
        trace = cls(data["traceID"])
        for raw in data["spans"]:
            tags = {tag["key"]: tag["value"] for tag in raw.get("tags", [])}
            parents = [ref["spanID"] for ref in raw.get("references", []) if ref["refType"] == "CHILD_OF"]
            trace.spans[raw["spanID"]] = Span(
                raw["spanID"],
                parents[0] if parents else None,
                raw["operationName"],
                services[raw["processID"]],
                str(tags.get("span.kind", "internal")),
                tags,
                int(raw["duration"]),
            )
        return trace

    @property
    def roots(self) -> list[Span]:
        return [span for span in self.spans.values() if span.parent_id is None]

    @property
    def orphans(self) -> list[Span]:
        """Spans whose parent is not in the trace."""
        return [span for span in self.spans.values() if span.parent_id and span.parent_id not in self.spans]

    @property
    def services(self) -> set[str]:
        return {span.service for span in self.spans.values()}

    def parent(self, span: Span) -> Span | None:
        return self.spans.get(span.parent_id) if span.parent_id else None

    def of_kind(self, kind: str, service: str | None = None) -> list[Span]:
        return [
            span
            for span in self.spans.values()
            if span.kind == kind and (service is None or span.service == service)
        ]

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans.values() if span.name == name]

    def ancestors(self, span: Span) -> list[Span]:
        chain, current = [], self.parent(span)
        while current is not None:
            chain.append(current)
            current = self.parent(current)
        return chain
