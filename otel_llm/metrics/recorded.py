"""Which LLM calls an instrumentation already recorded GenAI client metrics for, seen from its recordings.

The span-derived metrics (otel_llm.metrics.from_spans) must count a call only when nothing else did. Instead
of a list of scope names that the next release renames, this watches the recordings themselves: every
``gen_ai.client.operation.duration`` or ``gen_ai.client.token.usage`` recording made through otel-llm's
MeterProvider by any meter but otel-llm's own notes

- the meter's instrumentation scope name (instrumentations use one scope for their tracer and meter:
  ``opentelemetry.util.genai.handler``, OpenLLMetry's ``opentelemetry.instrumentation.openai.v1``, contrib
  botocore's ``opentelemetry.instrumentation.botocore.bedrock-runtime``), and
- the span id of the span current at the recording (or of the ``context`` passed with it): the LLM span of
  that call when the instrumentation records inside its span.

A call is covered when its LLM span (or one nested in it) has a noted span id or a noted scope.
Instrumentations record when the call ends, before the span reaches the export thread, so the first call of a
process is covered too.

Cost on the application thread, per GenAI recording: one current-span lookup and two set/dict writes under a
lock (well under a microsecond); nothing for other instruments. Memory: the scope names, and at most
``max_span_ids`` span ids (the oldest are forgotten first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace

from otel_llm import semconv

# The instruments whose recordings say "this call is counted" (the ones span-derived metrics would add).
WATCHED_INSTRUMENTS = frozenset({semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE})
DEFAULT_MAX_SPAN_IDS = 16384


class RecordedCalls:
    """Scope names and span ids of GenAI client metric recordings made by instrumentations."""

    def __init__(self, max_span_ids: int = DEFAULT_MAX_SPAN_IDS) -> None:
        if isinstance(max_span_ids, bool) or not isinstance(max_span_ids, int) or max_span_ids < 1:
            raise ValueError("max_span_ids must be an integer >= 1")
        self._max_span_ids = max_span_ids
        self._scopes: frozenset[str] = frozenset()  # replaced, never mutated: read without the lock
        self._span_ids: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, scope_name: str, context: Any = None) -> None:
        """A recording by ``scope_name``'s meter, in ``context`` (the current one when None)."""
        span_id = trace.get_current_span(context).get_span_context().span_id
        with self._lock:
            if scope_name not in self._scopes:
                self._scopes = self._scopes | {scope_name}
            if span_id:
                self._span_ids[span_id] = None
                if len(self._span_ids) > self._max_span_ids:
                    self._span_ids.popitem(last=False)

    def covers(self, scope_names: Iterable[str], span_ids: Iterable[int]) -> bool:
        """True when any of the scopes recorded GenAI metrics, or any of the spans had them recorded."""
        scopes = self._scopes
        if any(name in scopes for name in scope_names):
            return True
        with self._lock:
            return any(span_id in self._span_ids for span_id in span_ids)

    @property
    def scopes(self) -> frozenset[str]:
        """The instrumentation scopes seen recording GenAI client metrics so far."""
        return self._scopes
