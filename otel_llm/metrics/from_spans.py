"""Span-derived GenAI metrics: duration and token usage of each LLM call, recorded from its ended span.

Adds ``gen_ai.client.operation.duration`` (s) and ``gen_ai.client.token.usage`` ({token}, one recording per
token type: ``input`` and ``output``) once per model call the roll-up stage sees, and
``llm.client.token.usage.detail`` ({token}, ``llm.token.detail`` = ``cache_read`` | ``cache_write`` |
``reasoning``) for the parts of those counts the span reports. A call is never counted twice:

- LLM spans nested in one another (a LangChain ``chat`` span around the OpenAI SDK's own span) are one call:
  the stage calls ``record`` once, for the outermost, with the nested calls; the outermost's values are
  recorded.
- A call an instrumentation recorded these metrics for is left to it, by behaviour: nothing is recorded when
  ``recorded`` (otel_llm.metrics.recorded, fed by otel-llm's MeterProvider) saw a GenAI duration or token
  recording for the outermost span or a span nested in it, or from the instrumentation scope of one of them.
- The override, for instrumentations recording on another MeterProvider: nothing is recorded when one of
  those scopes is in ``skip_scopes`` (OTEL_LLM_SPAN_METRICS_SKIP_SCOPES).

The instruments are created at the first recording, so an app whose instrumentation records every call never
registers a second ``gen_ai.client.*`` instrument of the same name (the SDK warns about that once per view).

``record`` is the roll-up stage's ``on_llm_span`` hook; attach it to one stage only (configure() builds one
roll-up stage, whatever the number of exporters).

Attributes: the normalised provider, model and operation from the ``LLMCall``, ``error.type`` on the duration
of failed calls, and from the span (when set) ``gen_ai.response.model``, ``server.address``/``server.port``,
``llm.experiment.id``, ``llm.experiment.arm`` and ``llm.langgraph.node``. The views (otel_llm.metrics.views)
keep only their allowlists; the cardinality cap applies when the meter provider is otel-llm's.

Cost: on the export thread, per call: a scope and span-id check per span of the group, a few dict reads, up to
six histogram recordings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.trace import ReadableSpan

from otel_llm import semconv
from otel_llm.metrics.recorded import RecordedCalls
from otel_llm.processors.normalize import LLMCall

METER_NAME = "otel_llm.metrics.from_spans"
# The token-count parts recorded on METRIC_TOKEN_USAGE_DETAIL: llm.token.detail value <- LLMCall field.
TOKEN_DETAILS: tuple[tuple[str, str], ...] = (
    ("cache_read", "cache_read_input_tokens"),
    ("cache_write", "cache_write_input_tokens"),
    ("reasoning", "reasoning_output_tokens"),
)
# Span attributes copied onto the metrics as they are (low-cardinality by nature, checked by the views).
_COPIED_SPAN_ATTRIBUTES = (
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.EXPERIMENT_ID,
    semconv.EXPERIMENT_ARM,
)


class SpanDerivedMetrics:
    """Records duration and token usage of LLM calls no instrumentation recorded them for.

    ``skip_scopes``: instrumentation scope names never recorded from (the override); a name matches exactly
    or as a dotted prefix (``opentelemetry.instrumentation.openai`` covers
    ``opentelemetry.instrumentation.openai.v1``). ``recorded``: what instrumentations recorded (otel-llm's
    MeterProvider's ``recorded_calls``); None to rely on ``skip_scopes`` only.
    """

    def __init__(self, meter_provider: metrics.MeterProvider | None, skip_scopes: Iterable[str] = (),
                 recorded: RecordedCalls | None = None):
        if isinstance(skip_scopes, str):
            raise ValueError("skip_scopes must be an iterable of scope names, not one string")
        names = tuple(str(name).strip() for name in skip_scopes)
        if any(not name for name in names):
            raise ValueError("skip_scopes must not contain empty names")
        if recorded is not None and not isinstance(recorded, RecordedCalls):
            raise ValueError("recorded must be a RecordedCalls or None")
        self._skip_exact = frozenset(names)
        self._skip_prefixes = tuple(name + "." for name in names)
        self._recorded = recorded
        self._meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._instruments: tuple[Any, Any, Any] | None = None

    def skips(self, scope_name: str) -> bool:
        """True when spans of this instrumentation scope are left to the instrumentation's own metrics."""
        return scope_name in self._skip_exact or scope_name.startswith(self._skip_prefixes)

    def counted_elsewhere(self, call: LLMCall, nested: Sequence[LLMCall] = ()) -> bool:
        """True when an instrumentation recorded metrics for this call (or ``skip_scopes`` says it does)."""
        group = (call, *nested)
        if any(self.skips(member.scope_name) for member in group):
            return True
        return self._recorded is not None and self._recorded.covers(
            (member.scope_name for member in group), (member.span_id for member in group))

    def record(self, span: ReadableSpan, call: LLMCall, nested: Sequence[LLMCall] = ()) -> None:
        """Record one model call: the outermost LLM span ``span`` with its ``call`` and the ``nested`` calls
        beneath it (the roll-up stage's ``on_llm_span`` hook; it catches what this raises)."""
        if self.counted_elsewhere(call, nested):
            return
        duration, token_usage, token_detail = self._instruments or self._create_instruments()
        attributes = metric_attributes(span.attributes or {}, call)
        if call.error_type is not None:
            duration.record(call.duration_s, {**attributes, semconv.ERROR_TYPE: call.error_type})
        else:
            duration.record(call.duration_s, attributes)
        for token_type, count in ((semconv.TOKEN_TYPE_INPUT, call.input_tokens),
                                  (semconv.TOKEN_TYPE_OUTPUT, call.output_tokens)):
            if count is not None:
                token_usage.record(count, {**attributes, semconv.GEN_AI_TOKEN_TYPE: token_type})
        for detail, field_name in TOKEN_DETAILS:
            count = getattr(call, field_name)
            if count is not None:
                token_detail.record(count, {**attributes, semconv.TOKEN_DETAIL: detail})

    def _create_instruments(self) -> tuple[Any, Any, Any]:
        # Two threads may both create them: the SDK returns the same instrument for the same name.
        self._instruments = (
            self._meter.create_histogram(
                semconv.METRIC_OPERATION_DURATION, "s", "GenAI operation duration (from the LLM span)"),
            self._meter.create_histogram(
                semconv.METRIC_TOKEN_USAGE, "{token}", "Input and output tokens used (from the LLM span)"),
            self._meter.create_histogram(
                semconv.METRIC_TOKEN_USAGE_DETAIL, "{token}",
                "Cache-read, cache-write and reasoning parts of the tokens used (from the LLM span)"),
        )
        return self._instruments


def metric_attributes(span_attributes: Any, call: LLMCall) -> dict[str, Any]:
    """The labels of a metric point about ``call`` (the views keep their allowlists)."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_PROVIDER_NAME: call.provider,
        semconv.GEN_AI_REQUEST_MODEL: call.model,
        semconv.GEN_AI_OPERATION_NAME: call.operation,
    }
    if call.node is not None:
        attributes[semconv.LANGGRAPH_NODE] = call.node
    response_model = semconv.normalize_model(span_attributes.get(semconv.GEN_AI_RESPONSE_MODEL))
    if response_model is not None:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = response_model
    for key in _COPIED_SPAN_ATTRIBUTES:
        value = span_attributes.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            attributes[key] = value
    return attributes
