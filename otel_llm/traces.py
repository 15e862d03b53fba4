"""One small trace model for the user tools: finished SDK spans and Jaeger's JSON both become ``Trace``
objects.

``otel-llm demo`` reads the in-memory ``ReadableSpan`` objects of its embedded run, ``otel-llm search`` reads
Jaeger's ``/api/traces`` JSON; both normalise into ``Span``/``Trace`` here and render with
``otel_llm.cli.render``, so a trace looks the same whichever way it arrived. LLM calls are recognised and
described with ``otel_llm.semconv`` (the same rules as the span processors); a trace with no LLM span falls
back to the roll-up (``llm.rollup.*``) on its roots.

A span's parent is the one Jaeger draws it under: its parent span (Jaeger's ``CHILD_OF`` reference), else,
when it has none, the first span of the same trace it ``FOLLOWS_FROM`` (an OpenTelemetry span link). So a
queue consumer that only links to its producer still hangs under it, as in Jaeger's UI; ``Span.linked`` tells
such a parent from a real one, and ``Span.follows_from`` lists every linked span of the trace. A link into
another trace is never a parent: a consumer that starts its own trace is that trace's root.

This runs in the CLI and the tests, never on an application's hot path. Bad input (missing fields, non-numeric
times, parent cycles, spans whose parent is elsewhere) gives a defined result: missing text becomes
``"unknown"``, a span whose parent is not in the trace is a root (and an orphan when it names a parent), and
every span is visited once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from otel_llm import semconv

SERVICE_NAME = "service.name"
# Jaeger marks failed spans with the tag error=true and keeps the OTel status in otel.status_code, the span
# kind in span.kind (absent for INTERNAL) and the instrumentation scope in otel.scope.name.
JAEGER_ERROR_TAG = "error"
JAEGER_STATUS_CODE_TAG = "otel.status_code"
JAEGER_SPAN_KIND_TAG = "span.kind"
JAEGER_SCOPE_TAG = "otel.scope.name"
JAEGER_CHILD_OF = "CHILD_OF"
JAEGER_FOLLOWS_FROM = "FOLLOWS_FROM"
# Span kinds as Jaeger writes them (OpenTelemetry's SpanKind names in lower case).
KIND_INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Span:
    """One finished span, whatever its source. Times are microseconds since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_us: int
    duration_us: int
    attributes: Mapping[str, Any]
    error: bool
    kind: str = KIND_INTERNAL  # server, client, producer, consumer or internal
    scope: str | None = None  # the instrumentation scope that made the span
    follows_from: tuple[str, ...] = ()  # spans of this trace it links to (Jaeger's FOLLOWS_FROM)
    linked: bool = False  # parent_id is a span it only links to: it has no parent span of its own

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    def to_dict(self) -> dict[str, Any]:
        """The span as JSON-ready values (times in microseconds since the epoch, attributes as text where
        they are not numbers or booleans)."""
        return {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "service": self.service,
            "start_us": self.start_us,
            "duration_us": self.duration_us,
            "error": self.error,
            "attributes": {key: _json_value(value) for key, value in self.attributes.items()},
        }

    @property
    def is_llm(self) -> bool:
        """Whether the semconv rules read a model call from this span."""
        return semconv.is_llm_span(self.attributes)

    @property
    def node(self) -> str | None:
        """The LangGraph node this span is (our attribute, else LangSmith's metadata), or None."""
        node = self.attributes.get(semconv.LANGGRAPH_NODE) or self.attributes.get(
            semconv.LANGSMITH_LANGGRAPH_NODE
        )
        return str(node) if node else None


@dataclass(frozen=True, slots=True)
class LlmCall:
    """A model call as the semconv rules read it from one span."""

    span: Span
    provider: str
    model: str
    input_tokens: int
    output_tokens: int

    @classmethod
    def from_span(cls, span: Span) -> LlmCall | None:
        if not semconv.is_llm_span(span.attributes):
            return None
        model = semconv.resolve_model(span.attributes)
        provider = semconv.resolve_provider(span.attributes, model)
        input_tokens, output_tokens = semconv.resolve_tokens(span.attributes)
        return cls(
            span, provider or semconv.UNKNOWN, model or semconv.UNKNOWN, input_tokens or 0, output_tokens or 0
        )


@dataclass(frozen=True)
class Trace:
    """The spans of one trace, sorted by start time, with the facts the tools print about it."""

    trace_id: str
    spans: tuple[Span, ...]

    @cached_property
    def span_ids(self) -> frozenset[str]:
        return frozenset(span.span_id for span in self.spans)

    @cached_property
    def by_id(self) -> Mapping[str, Span]:
        return {span.span_id: span for span in self.spans}

    @cached_property
    def roots(self) -> tuple[Span, ...]:
        """Spans whose parent is not in this trace (the real root, and orphans if any), earliest first."""
        return tuple(span for span in self.spans if span.parent_id not in self.span_ids)

    @property
    def orphans(self) -> list[Span]:
        """Spans that name a parent this trace does not hold (lost, or not arrived yet)."""
        return [span for span in self.roots if span.parent_id is not None]

    def parent(self, span: Span) -> Span | None:
        """``span``'s parent in this trace, or None."""
        return self.by_id.get(span.parent_id) if span.parent_id is not None else None

    def ancestors(self, span: Span) -> list[Span]:
        """``span``'s parent, its parent's parent, ... up to a root (a parent cycle is walked once)."""
        chain: list[Span] = []
        seen = {span.span_id}
        current = self.parent(span)
        while current is not None and current.span_id not in seen:
            seen.add(current.span_id)
            chain.append(current)
            current = self.parent(current)
        return chain

    def of_kind(self, kind: str, service: str | None = None) -> list[Span]:
        """The spans of ``kind`` (``server``, ``client``, ...), of ``service`` when given."""
        return [span for span in self.spans if span.kind == kind and service in (None, span.service)]

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]

    @cached_property
    def children(self) -> Mapping[str, tuple[Span, ...]]:
        grouped: dict[str, list[Span]] = defaultdict(list)
        for span in self.spans:
            if span.parent_id in self.span_ids and span.parent_id != span.span_id:
                grouped[span.parent_id].append(span)
        return {parent: tuple(kids) for parent, kids in grouped.items()}

    @property
    def root(self) -> Span:
        return self.roots[0] if self.roots else self.spans[0]

    @property
    def start_us(self) -> int:
        return min(span.start_us for span in self.spans)

    @property
    def duration_us(self) -> int:
        return max(span.end_us for span in self.spans) - self.start_us

    @cached_property
    def services(self) -> tuple[str, ...]:
        """Services in the order they first appear."""
        return tuple(dict.fromkeys(span.service for span in self.spans))

    @cached_property
    def llm_calls(self) -> tuple[LlmCall, ...]:
        return tuple(call for call in map(LlmCall.from_span, self.spans) if call is not None)

    @cached_property
    def _rollup(self) -> Mapping[str, Any]:
        """The roll-up attributes of the first root that has them (used when no LLM span was exported)."""
        for span in self.roots:
            if semconv.ROLLUP_CALLS in span.attributes or semconv.ROLLUP_PROVIDER in span.attributes:
                return span.attributes
        return {}

    @cached_property
    def providers(self) -> tuple[str, ...]:
        if self.llm_calls:
            return tuple(sorted({call.provider for call in self.llm_calls}))
        return _split_joined(self._rollup.get(semconv.ROLLUP_PROVIDER))

    @cached_property
    def models(self) -> tuple[str, ...]:
        if self.llm_calls:
            return tuple(sorted({call.model for call in self.llm_calls}))
        return _split_joined(self._rollup.get(semconv.ROLLUP_MODEL))

    @property
    def call_count(self) -> int:
        return len(self.llm_calls) if self.llm_calls else _as_int(self._rollup.get(semconv.ROLLUP_CALLS))

    @property
    def input_tokens(self) -> int:
        if self.llm_calls:
            return sum(call.input_tokens for call in self.llm_calls)
        return _as_int(self._rollup.get(semconv.ROLLUP_INPUT_TOKENS))

    @property
    def output_tokens(self) -> int:
        if self.llm_calls:
            return sum(call.output_tokens for call in self.llm_calls)
        return _as_int(self._rollup.get(semconv.ROLLUP_OUTPUT_TOKENS))

    @cached_property
    def costs(self) -> Mapping[str, float]:
        """Currency -> what the trace's LLM calls cost (``llm.usage.cost.amount`` of each LLM span not nested
        in another LLM span, so a call wrapped by two instrumentations counts once); empty when none is
        priced."""
        by_id = self.by_id
        llm_ids = {call.span.span_id for call in self.llm_calls}
        totals: dict[str, float] = {}
        for call in self.llm_calls:
            amount = call.span.attributes.get(semconv.COST_AMOUNT)
            if not isinstance(amount, (int, float)) or isinstance(amount, bool):
                continue
            parent, hops = call.span.parent_id, 0
            while parent in by_id and parent not in llm_ids and hops < len(by_id):
                parent, hops = by_id[parent].parent_id, hops + 1
            if parent in llm_ids:
                continue
            currency = str(call.span.attributes.get(semconv.COST_CURRENCY) or "USD")
            totals[currency] = totals.get(currency, 0.0) + float(amount)
        return totals

    @property
    def error(self) -> bool:
        return any(span.error for span in self.spans)

    def attribute_values(self, key: str) -> set[str]:
        """Every value ``key`` takes on any span of the trace, as text."""
        return {str(span.attributes[key]) for span in self.spans if span.attributes.get(key) is not None}

    def walk(self) -> Iterator[tuple[int, Span, bool]]:
        """Depth-first (depth, span, is_last_sibling) from each root, children by start time; each span once.

        Spans only reachable through a parent cycle (malformed data) are walked as extra roots at the end.
        """
        seen: set[str] = set()
        for start in self.roots + self.spans:
            stack = [(0, start, True)]
            while stack:
                depth, span, last = stack.pop()
                if span.span_id in seen:
                    continue
                seen.add(span.span_id)
                yield depth, span, last
                kids = self.children.get(span.span_id, ())
                stack.extend(
                    (depth + 1, kid, index == len(kids) - 1) for index, kid in reversed(list(enumerate(kids)))
                )

    def summary(self) -> dict[str, Any]:
        """The trace's one-line facts as JSON-ready values (``search --json``, ``demo --json``)."""
        return {
            "trace_id": self.trace_id,
            "start": datetime.fromtimestamp(self.start_us / 1e6, UTC).isoformat(timespec="milliseconds"),
            "root_service": self.root.service,
            "root_operation": self.root.name,
            "duration_ms": round(self.duration_us / 1000, 3),
            "services": list(self.services),
            "providers": list(self.providers),
            "models": list(self.models),
            "llm_calls": self.call_count,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "error": self.error,
            "spans": len(self.spans),
        }

    def to_dict(self) -> dict[str, Any]:
        """``summary()`` with the spans themselves instead of their count (``demo --json``)."""
        return {**self.summary(), "spans": [span.to_dict() for span in self.spans]}


def _json_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return str(value)


def _as_int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _split_joined(value: Any) -> tuple[str, ...]:
    """Values of a roll-up string joined by "," (or a sequence), sorted and de-duplicated."""
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(sorted({str(item).strip() for item in items if str(item).strip()}))


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Spans grouped into traces (each sorted by start), earliest trace first; a span id seen again in the
    same trace is dropped (Jaeger returns the whole trace to a query of each of its services, so a trace
    assembled from several services' answers holds every span once per service)."""
    by_trace: dict[str, dict[str, Span]] = defaultdict(dict)
    for span in spans:
        by_trace[span.trace_id].setdefault(span.span_id, span)
    traces = [
        Trace(trace_id, tuple(sorted(members.values(), key=lambda span: (span.start_us, span.span_id))))
        for trace_id, members in by_trace.items()
    ]
    return sorted(traces, key=lambda trace: (trace.start_us, trace.trace_id))


def from_readable_spans(spans: Iterable[Any]) -> list[Trace]:
    """Traces from finished OpenTelemetry SDK spans (``ReadableSpan``), service from each span's resource."""
    from opentelemetry.trace import StatusCode

    converted = []
    for span in spans:
        start_ns = span.start_time or 0
        end_ns = span.end_time or start_ns
        resource = span.resource.attributes if span.resource is not None else {}
        trace_id = span.context.trace_id
        follows_from = tuple(
            format(link.context.span_id, "016x") for link in span.links or ()
            if link.context.trace_id == trace_id
        )
        parent, linked = _parent(
            format(span.parent.span_id, "016x") if span.parent is not None else None, follows_from
        )
        scope = span.instrumentation_scope
        converted.append(
            Span(
                trace_id=format(trace_id, "032x"),
                span_id=format(span.context.span_id, "016x"),
                parent_id=parent,
                name=span.name or semconv.UNKNOWN,
                service=str(resource.get(SERVICE_NAME) or semconv.UNKNOWN),
                start_us=start_ns // 1000,
                duration_us=max(end_ns - start_ns, 0) // 1000,
                attributes=dict(span.attributes or {}),
                error=span.status.status_code is StatusCode.ERROR,
                kind=span.kind.name.lower(),
                scope=scope.name if scope is not None else None,
                follows_from=follows_from,
                linked=linked,
            )
        )
    return group_traces(converted)


def _parent(child_of: str | None, follows_from: tuple[str, ...]) -> tuple[str | None, bool]:
    """(parent id, whether it is only a link): the parent span, else the first linked span of the trace."""
    if child_of is not None or not follows_from:
        return child_of, False
    return follows_from[0], True


def _jaeger_tag_value(tag: Mapping[str, Any]) -> Any:
    value = tag.get("value")
    if tag.get("type") == "int64":  # a number, or its text
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            return value
    return value


def _jaeger_tags(tags: Any) -> dict[str, Any]:
    if not isinstance(tags, list):
        return {}
    return {
        str(tag["key"]): _jaeger_tag_value(tag) for tag in tags if isinstance(tag, Mapping) and "key" in tag
    }


def _jaeger_references(span: Mapping[str, Any], trace_id: str) -> tuple[str | None, tuple[str, ...]]:
    """(the CHILD_OF span id, the FOLLOWS_FROM span ids), of references into trace ``trace_id`` only."""
    child_of, follows_from = None, []
    references = span.get("references")
    for reference in references if isinstance(references, list) else ():
        if not isinstance(reference, Mapping) or not reference.get("spanID"):
            continue
        if str(reference.get("traceID") or trace_id).zfill(32) != trace_id:
            continue
        if reference.get("refType") == JAEGER_FOLLOWS_FROM:
            follows_from.append(str(reference["spanID"]))
        elif reference.get("refType") == JAEGER_CHILD_OF and child_of is None:
            child_of = str(reference["spanID"])
    return child_of, tuple(follows_from)


def from_jaeger(payload: Mapping[str, Any]) -> list[Trace]:
    """Traces from a Jaeger query API answer (``/api/traces``, ``/api/traces/{id}``: ``{"data": [...]}``)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    converted = []
    for trace in data if isinstance(data, list) else []:
        if not isinstance(trace, Mapping):
            continue
        processes = trace.get("processes") if isinstance(trace.get("processes"), Mapping) else {}
        for span in trace.get("spans") or []:
            if not isinstance(span, Mapping) or not span.get("spanID"):
                continue
            process = processes.get(span.get("processID")) or span.get("process") or {}
            tags = _jaeger_tags(span.get("tags"))
            # Jaeger drops leading zeros when the high half is 0; the SDK always prints 32 digits.
            trace_id = str(span.get("traceID") or trace.get("traceID") or semconv.UNKNOWN).zfill(32)
            child_of, follows_from = _jaeger_references(span, trace_id)
            parent, linked = _parent(child_of, follows_from)
            scope = tags.get(JAEGER_SCOPE_TAG)
            converted.append(
                Span(
                    trace_id=trace_id,
                    span_id=str(span["spanID"]),
                    parent_id=parent,
                    name=str(span.get("operationName") or semconv.UNKNOWN),
                    service=str(process.get("serviceName") or semconv.UNKNOWN),
                    start_us=_as_int(span.get("startTime")),
                    duration_us=_as_int(span.get("duration")),
                    attributes=tags,
                    error=tags.get(JAEGER_ERROR_TAG) is True or tags.get(JAEGER_STATUS_CODE_TAG) == "ERROR",
                    kind=str(tags.get(JAEGER_SPAN_KIND_TAG) or KIND_INTERNAL),
                    scope=str(scope) if scope is not None else None,
                    follows_from=follows_from,
                    linked=linked,
                )
            )
    return group_traces(converted)


def summaries_json(traces: Iterable[Trace]) -> str:
    return json.dumps([trace.summary() for trace in traces], indent=2)
