"""LLM span enrichment on the export thread: what one ended span says about one model call.

Adds to every LLM span (``semconv.is_llm_span``) a normalised ``gen_ai.provider.name`` and
``gen_ai.request.model`` ("unknown" when nothing is derivable), and to any span carrying LangSmith's
``langsmith.metadata.langgraph_node`` our ``llm.langgraph.node``. Reads every instrumentation's names
(semconv, deprecated semconv, langsmith[otel], OpenLLMetry, OpenInference) through ``otel_llm.semconv``.

``ReadableSpan`` is immutable, so ``with_attributes`` builds a copy with merged attributes. Cost: a handful of
dict lookups per span, plus one attribute-dict copy for the spans that change; all of it on the export thread
(the roll-up stage calls it; with OTEL_LLM_ROLLUP=collector, ``NormalizeSpanExporter`` does, span by span,
with no buffer), none on the application's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from otel_llm import semconv
from otel_llm._internals import attributes_of
from otel_llm.processors.ratelimit import RateLimitedLogger

_rate_limited = RateLimitedLogger(logging.getLogger(__name__))

if TYPE_CHECKING:
    from otel_llm.processors.cost import Cost, Pricer

# Operation of a LangSmith llm/embedding span that does not say (langsmith writes "chat" for llm runs).
_LANGSMITH_KIND_OPERATIONS = {"llm": "chat", "embedding": "embeddings"}
_MAX_NODE_LENGTH = 128
# The enrichment of a span that gets none: one shared read-only empty mapping.
NO_CHANGE: Mapping[str, Any] = MappingProxyType({})


class LLMCall(NamedTuple):
    """The facts about one model call that the roll-up and the span-derived metrics use."""

    provider: str
    model: str
    operation: str
    input_tokens: int | None
    output_tokens: int | None
    error_type: str | None
    duration_s: float
    node: str | None
    scope_name: str
    span_id: int = 0
    # Parts of the token counts (cache reads and writes of the input, reasoning of the output), when reported.
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    # What the call cost (otel_llm.processors.cost), when the roll-up stage has a pricer.
    cost: Cost | None = None


# LLMCall field <- token kind (semconv.TOKEN_KEYS).
TOKEN_KIND_OF_FIELD: Mapping[str, str] = MappingProxyType({
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_write_input_tokens": "cache_write",
    "reasoning_output_tokens": "reasoning",
})


def langgraph_node(attributes: Mapping[str, Any]) -> str | None:
    """The LangGraph node a span belongs to: ours if set, else LangSmith's metadata; capped text or None."""
    value = attributes.get(semconv.LANGGRAPH_NODE)
    if value is None:
        value = attributes.get(semconv.LANGSMITH_LANGGRAPH_NODE)
    text = semconv.normalize_model(value)  # strip + cap, case kept: the same rule as a model id
    return text[:_MAX_NODE_LENGTH] if text is not None else None


def _operation(attributes: Mapping[str, Any]) -> str:
    for key in (semconv.GEN_AI_OPERATION_NAME, semconv.OPENLLMETRY_REQUEST_TYPE):
        value = attributes.get(key)
        if value in semconv.LLM_OPERATIONS:
            return value
    kind = attributes.get(semconv.LANGSMITH_SPAN_KIND)
    return _LANGSMITH_KIND_OPERATIONS.get(kind, "chat") if isinstance(kind, str) else "chat"


def _error_type(span: ReadableSpan, attributes: Mapping[str, Any]) -> str | None:
    value = semconv.normalize_model(attributes.get(semconv.ERROR_TYPE))
    if value is not None:
        return value
    return semconv.OTHER if span.status.status_code is StatusCode.ERROR else None


def llm_call_of(span: ReadableSpan, attributes: Mapping[str, Any] | None = None) -> LLMCall | None:
    """The model call a span describes, or None when it is not an LLM span.

    ``attributes``: the span's attributes when the caller already has them (``span.attributes`` builds a new
    read-only view on every access).
    """
    if attributes is None:
        attributes = attributes_of(span)
    if not semconv.is_llm_span(attributes):
        return None
    model = semconv.resolve_model(attributes)
    provider = semconv.resolve_provider(attributes, model)
    tokens = semconv.resolve_token_counts(attributes)
    start, end = span.start_time, span.end_time
    scope = span.instrumentation_scope
    context = span.get_span_context()
    return LLMCall(
        provider=provider or semconv.UNKNOWN,
        model=model or semconv.UNKNOWN,
        operation=_operation(attributes),
        error_type=_error_type(span, attributes),
        duration_s=max(0, end - start) / 1e9 if start is not None and end is not None else 0.0,
        node=langgraph_node(attributes),
        scope_name=scope.name if scope is not None else "",
        span_id=context.span_id if context is not None else 0,
        **{field: tokens.get(kind) for field, kind in TOKEN_KIND_OF_FIELD.items()},
    )


def enrichment(
    span: ReadableSpan, call: LLMCall | None, attributes: Mapping[str, Any] | None = None
) -> Mapping[str, Any]:
    """The attributes to add to or overwrite on ``span``: only those that differ from what it carries.

    ``NO_CHANGE`` itself for a span that is neither an LLM span nor carries LangSmith's node metadata (most
    spans), without building anything.
    """
    if attributes is None:
        attributes = attributes_of(span)
    if call is None and semconv.LANGSMITH_LANGGRAPH_NODE not in attributes:
        return NO_CHANGE
    wanted: dict[str, Any] = {}
    if call is not None:
        wanted[semconv.GEN_AI_PROVIDER_NAME] = call.provider
        wanted[semconv.GEN_AI_REQUEST_MODEL] = call.model
        node = call.node
    else:
        node = langgraph_node(attributes)
    if node is not None:
        wanted[semconv.LANGGRAPH_NODE] = node
    changed = {key: value for key, value in wanted.items() if attributes.get(key) != value}
    if call is not None and call.cost is not None:
        # Added without comparing: the span rarely has them, and a missed get() costs an exception here.
        changed.update(call.cost.attributes())
    return changed


class EnrichedSpan(ReadableSpan):
    """A copy of an ended span with other attributes (and, when given, another name, status or events, one
    for one); it reports the original's dropped attribute, event and link counts."""

    def __init__(self, original: ReadableSpan, attributes: Mapping[str, Any], *, name: str | None = None,
                 status: Status | None = None, events: Sequence[Event] | None = None) -> None:
        super().__init__(
            name=original.name if name is None else name,
            context=original.get_span_context(),
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=original.events if events is None else events,
            links=original.links,
            kind=original.kind,
            status=original.status if status is None else status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._dropped = (original.dropped_attributes, original.dropped_events, original.dropped_links)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def with_attributes(span: ReadableSpan, extra: Mapping[str, Any]) -> ReadableSpan:
    """A copy of ``span`` with ``extra`` merged into its attributes; the span itself when ``extra`` is empty.

    ``extra`` must hold valid attribute values (text, numbers, bools or sequences of them): they are not
    validated again. The copy keeps the original's dropped counts, events, links, resource and scope.
    """
    if not extra:
        return span
    return EnrichedSpan(span, {**attributes_of(span), **extra})


def enriched(span: ReadableSpan, pricer: Pricer | None = None) -> ReadableSpan:
    """``span`` with its enrichment (and, with a ``pricer``, an LLM call's cost): the span itself when nothing
    changes."""
    attributes = attributes_of(span)
    call = llm_call_of(span, attributes)
    if call is not None and pricer is not None:
        call = pricer.price(call, attributes)
    return with_attributes(span, enrichment(span, call, attributes))


class NormalizeSpanExporter(SpanExporter):
    """Enriches each span on its own (no buffer, no roll-up), then forwards the batch to ``inner``.

    The stage of OTEL_LLM_ROLLUP=collector: the otel-llm collector rolls whole traces up (summing the calls'
    cost, which it does not compute), the app still sends normalised LLM spans, priced with a ``pricer``. A
    span it cannot read is forwarded unchanged.
    """

    def __init__(self, inner: SpanExporter, pricer: Pricer | None = None) -> None:
        if not callable(getattr(inner, "export", None)):
            raise ValueError("inner must be a SpanExporter (an object with export())")
        self._inner = inner
        self._pricer = pricer

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out = []
        for span in spans:
            try:
                out.append(enriched(span, self._pricer))
            except Exception:
                _rate_limited.exception("otel-llm normalisation could not read a span; forwarding it as is")
                out.append(span)
        return self._inner.export(out)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()
