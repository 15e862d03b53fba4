"""Live LangChain/LangGraph spans: a callback handler that makes each run's span current while the run
executes.

Adds one span per LangChain run, started when the run starts and ended when it ends (not after the fact):

- graph, node and other chain runs: INTERNAL, named after the run (``intent``, ``_fan_out``); the top-level
  run (the graph) is ``invoke_workflow`` (``invoke_workflow <class>`` when the chain declares its class
  name) with ``gen_ai.operation.name=invoke_workflow``, its run name (often per request, e.g.
  ``chat:<job_id>``) only in ``langsmith.trace.name``, so span names stay low-cardinality;
- chat model / LLM runs: CLIENT, named ``chat <model>`` (``text_completion <model>`` for plain LLMs), with
  ``gen_ai.operation.name``, ``gen_ai.provider.name`` (``ls_provider`` normalised by otel_llm.semconv, so
  ``amazon_bedrock`` becomes ``aws.bedrock``), ``gen_ai.request.model``, ``gen_ai.response.model``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens`` and, when streamed,
  ``gen_ai.response.time_to_first_chunk``;
- tool and retriever runs: INTERNAL, ``execute_tool <name>`` / ``retrieval <name>``;
- on every span LangSmith's names, so the collector can also ship them to LangSmith:
  ``langsmith.span.kind``, ``langsmith.trace.name``, ``langsmith.span.tags``, ``langsmith.metadata.<key>``
  per run metadata entry (strings capped), plus ``llm.langgraph.node``; ERROR status and ``error.type`` when
  the run fails.

Prompts and completions are not recorded unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
(then capped, as LangSmith's ``gen_ai.prompt`` / ``gen_ai.completion``).

Parenting: a run's span is the child of its parent run's span (``parent_run_id``), else of the current OTel
span (the worker's CONSUMER span). While the run executes its span is current, so spans opened inside a node
(gRPC, HTTP, an LLM SDK's own HTTP span) are its children: in Send branches running in threads and in async
tasks too.

Metrics, once per streamed LLM run (never per token): ``gen_ai.client.operation.time_to_first_chunk`` and
``gen_ai.client.operation.time_per_output_chunk`` (the run's mean interval), labelled provider, model,
operation and node, through otel_llm.metrics.streaming's instruments.

Cost: per run one span start/end, one dict insert/pop under an uncontended lock and one context attach; per
token one dict lookup, one clock read and three assignments. Measured on the reference graph (11 runs, 25
tokens; bench/peers/replay_callbacks.py, docs/performance.md): ~200 µs of the handler's own work a graph
run, ~700 µs with the SDK's spans and their ~15 attributes each. State is bounded: runs that never end are
evicted past ``max_open_runs`` (their span ends with ``error.type=otel_llm.run_not_ended``) and counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import baggage, metrics, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_llm import semconv
from otel_llm.instrumentation import langsmith_bridge
from otel_llm.metrics.streaming import EXPERIMENT_LABELS, StreamMetrics
from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.settings import Settings, current_settings, env_bool

_logger = logging.getLogger(__name__)
_boundary_log = RateLimitedLogger(_logger)

ENV_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# OTEL_LLM_LANGCHAIN_* are Settings fields (otel_llm.settings); these are their defaults.
DEFAULT_MAX_OPEN_RUNS = Settings.langchain_max_open_runs
DEFAULT_MAX_ATTRIBUTE_LENGTH = Settings.langchain_max_attribute_length
DEFAULT_MAX_CONTENT_LENGTH = Settings.langchain_max_content_length
# Metadata values that are lists or dicts become JSON only when this small (a big one would cost per run).
MAX_JSON_ITEMS = 16
# Tuples (LangGraph's langgraph_path / langgraph_triggers), metadata keys and model/provider values repeat
# from run to run: their JSON, attribute names and normalised forms are remembered, up to this many each.
MAX_CACHED_ENTRIES = 1024
# Metadata not copied: checkpoint_ns repeats langgraph_checkpoint_ns; lc_versions is the same for the whole
# process (library versions belong on the resource). Each attribute costs the SDK a copy and a check.
SKIPPED_METADATA = frozenset({"checkpoint_ns", "lc_versions"})

KIND_CHAIN = "chain"
KIND_LLM = "llm"
KIND_TOOL = "tool"
KIND_RETRIEVER = "retriever"
# LangGraph tags its internal runs (the __start__ writer) with LangSmith's hidden tag; they get no span.
HIDDEN_TAG = "langsmith:hidden"
# LangGraph's control-flow exceptions (interrupt, Command to the parent graph) end a run without failing it.
CONTROL_FLOW_ERRORS = frozenset({"GraphBubbleUp"})
EVICTED_ERROR_TYPE = "otel_llm.run_not_ended"
TRACER_NAME = __name__
# Health of the handler's state, observed at collection time (docs/attributes.md).
METRIC_OPEN_RUNS = "otel_llm.langchain.open_runs"
METRIC_EVICTED_RUNS = "otel_llm.langchain.evicted_runs"


class RunSpan(trace.Span):
    """What a run puts in the OTel context: its span while the run is live, its live ancestor's once it ended.

    Why not the span itself: LangChain ends async runs in a copy of the caller's context
    (``langchain_core.callbacks.manager.shielded``), so the caller's context cannot be restored when an async
    run ends. Code the caller runs afterwards (the next HTTP call in the node, the worker's ack after the
    graph) must not become a child of the ended run; through this object it becomes a child of the innermost
    live one.
    """

    __slots__ = ("_span", "_parent")

    def __init__(self, span: trace.Span, parent: trace.Span) -> None:
        self._span: trace.Span | None = span
        self._parent = parent

    def _target(self) -> trace.Span:
        span = self._span
        return span if span is not None else self._parent

    def run_ended(self) -> None:
        """From now on stand for the parent (and hold no reference to the ended span)."""
        self._span = None

    def get_span_context(self) -> trace.SpanContext:
        return self._target().get_span_context()

    def is_recording(self) -> bool:
        return self._target().is_recording()

    def end(self, end_time: int | None = None) -> None:
        self._target().end(end_time)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._target().set_attributes(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self._target().set_attribute(key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self._target().add_event(name, attributes, timestamp)

    def add_link(self, context: trace.SpanContext, attributes: Any = None) -> None:
        self._target().add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._target().update_name(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._target().set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._target().record_exception(exception, attributes, timestamp, escaped)


class _Run:
    """One live run: its span, the context it made current, and the streaming aggregates of an LLM run."""

    __slots__ = (
        "run_id",
        "span",
        "scope",
        "context",
        "previous",
        "llm_labels",
        "started",
        "first",
        "last",
        "chunks",
        "capture",
    )

    def __init__(self, run_id: UUID, span: trace.Span, scope: RunSpan, context: Any, previous: Any) -> None:
        self.run_id = run_id
        self.span = span
        self.scope = scope
        self.context = context
        self.previous = previous
        self.llm_labels: dict[str, str] | None = None  # metric labels; set for LLM runs only
        self.started = 0.0
        self.first: float | None = None
        self.last = 0.0
        self.chunks = 0
        self.capture = False


class OpenTelemetryCallbackHandler(BaseCallbackHandler):
    """LangChain callbacks -> live OTel spans (see the module docstring). One instance serves every run.

    ``run_inline`` makes LangChain call it on the run's own thread or task, before the run's code, so the span
    it makes current is seen by that code. Every callback catches its own exceptions (rate-limited log).
    """

    run_inline = True

    def __init__(
        self,
        tracer: trace.Tracer,
        stream_metrics: StreamMetrics | None = None,
        *,
        max_open_runs: int = DEFAULT_MAX_OPEN_RUNS,
        max_attribute_length: int = DEFAULT_MAX_ATTRIBUTE_LENGTH,
        capture_content: bool = False,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_open_runs < 1:
            raise ValueError("max_open_runs must be an integer >= 1")
        if max_attribute_length < 1:
            raise ValueError("max_attribute_length must be an integer >= 1")
        if max_content_length < 1:
            raise ValueError("max_content_length must be an integer >= 1")
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds as a float")
        self._tracer = tracer
        self._metrics = stream_metrics
        self._max_open_runs = max_open_runs
        self._max_length = max_attribute_length
        self._capture_content = capture_content
        self._max_content_length = max_content_length
        self._clock = clock
        self._runs: dict[UUID, _Run] = {}
        self._lock = threading.Lock()
        self.evicted_runs = 0

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (aliases of hidden runs included)."""
        return len(self._runs)

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # --- start callbacks (LangChain passes tags, metadata, name, invocation_params as keywords) -----------
    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start_internal(KIND_CHAIN, None, serialized, run_id, kwargs)

    def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start_internal(KIND_TOOL, semconv.OPERATION_EXECUTE_TOOL, serialized, run_id, kwargs)

    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start_internal(KIND_RETRIEVER, semconv.OPERATION_RETRIEVAL, serialized, run_id, kwargs)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start_llm(semconv.OPERATION_CHAT, serialized, messages, run_id, kwargs)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start_llm(semconv.OPERATION_TEXT_COMPLETION, serialized, prompts, run_id, kwargs)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            now = self._clock()
            if run.first is None:
                run.first = now
            run.last = now
            run.chunks += 1

    # --- end callbacks --------------------------------------------------------------------------------------
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None, response)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    # --- internals ------------------------------------------------------------------------------------------
    def _start_internal(
        self, kind: str, operation: str | None, serialized: Any, run_id: UUID, kwargs: Mapping[str, Any]
    ) -> None:
        """A chain, tool or retriever run: an INTERNAL span named after the run (``<operation> <name>``)."""
        try:
            name = _run_name(serialized, kwargs, kind)
            tags, parent_run_id = kwargs.get("tags"), kwargs.get("parent_run_id")
            attributes = self._common_attributes(kind, name, tags, kwargs.get("metadata"))
            if operation is None and parent_run_id is None:
                # The top-level chain (the graph). Its run name is often per request (the Eco2 agent's run
                # config names it chat:<job_id>), and a span name must stay low-cardinality (span metrics,
                # Jaeger's operation list): the run name stays in langsmith.trace.name, the span takes the
                # operation and, when the chain declares one, its class name.
                operation = semconv.OPERATION_INVOKE_WORKFLOW
                declared = serialized.get("name") if _is_mapping(serialized) else None
                name = f"{operation} {declared}" if declared else operation
            elif operation is not None:
                name = f"{operation} {name}"
            if operation is not None:
                attributes[semconv.GEN_AI_OPERATION_NAME] = operation
            if kind == KIND_TOOL:
                attributes[semconv.GEN_AI_TOOL_NAME] = attributes[semconv.LANGSMITH_TRACE_NAME]
            self._start(run_id, parent_run_id, tags, name, SpanKind.INTERNAL, attributes)
        except Exception:
            _boundary_log.exception("LangChain run span not started")

    def _start_llm(
        self, operation: str, serialized: Any, prompt: Any, run_id: UUID, kwargs: Mapping[str, Any]
    ) -> None:
        """A chat model or LLM run: a CLIENT span ``<operation> <model>``, provider, model, metric labels."""
        try:
            metadata, tags = kwargs.get("metadata"), kwargs.get("tags")
            meta = metadata if _is_mapping(metadata) else {}
            params = kwargs.get("invocation_params")
            params = params if _is_mapping(params) else {}
            provider, model = _llm_identity(
                meta.get("ls_model_name") or params.get("model") or params.get("model_name"),
                meta.get("ls_provider"),
            )
            attributes = self._common_attributes(
                KIND_LLM, _run_name(serialized, kwargs, KIND_LLM), tags, metadata
            )
            attributes[semconv.GEN_AI_OPERATION_NAME] = operation
            attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
            attributes[semconv.GEN_AI_REQUEST_MODEL] = model
            if self._capture_content:
                attributes[semconv.LANGSMITH_PROMPT] = _content_text(prompt, self._max_content_length)
            span_name = f"{operation} {model}"
            run = self._start(
                run_id, kwargs.get("parent_run_id"), tags, span_name, SpanKind.CLIENT, attributes
            )
            if run is None:
                return
            labels = {
                semconv.GEN_AI_OPERATION_NAME: operation,
                semconv.GEN_AI_PROVIDER_NAME: provider,
                semconv.GEN_AI_REQUEST_MODEL: model,
            }
            node = attributes.get(semconv.LANGGRAPH_NODE)
            if node is not None:
                labels[semconv.LANGGRAPH_NODE] = node
            # Per-arm TTFT (docs/experiments.md), from the context current at the start (already at hand).
            entries = baggage.get_all(run.previous)
            for key in EXPERIMENT_LABELS:
                value = entries.get(key)
                if value is not None:
                    labels[key] = str(value)
            run.llm_labels = labels
            run.capture = self._capture_content
            run.started = self._clock()
        except Exception:
            _boundary_log.exception("LangChain LLM span not started")

    def _common_attributes(
        self, kind: str, name: str, tags: Sequence[str] | None, metadata: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        cap = self._max_length
        attributes: dict[str, Any] = {
            semconv.LANGSMITH_SPAN_KIND: kind,
            semconv.LANGSMITH_TRACE_NAME: name[:cap],
        }
        if tags:
            try:
                joined = ", ".join(tags)
            except TypeError:  # a tag that is not a string
                joined = ", ".join(map(str, tags))
            attributes[semconv.LANGSMITH_SPAN_TAGS] = joined[:cap]
        if metadata:
            names = _metadata_names
            for key, value in metadata.items():
                attribute = names.get(key)
                if attribute is None:
                    if key in SKIPPED_METADATA:
                        continue
                    attribute = _metadata_name(key)
                text = value[:cap] if type(value) is str else _attribute_value(value, cap)
                if text is not None:
                    attributes[attribute] = text
            node = metadata.get("langgraph_node")
            if node is not None:
                attributes[semconv.LANGGRAPH_NODE] = str(node)[:cap]
        return attributes

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> _Run | None:
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if tags and HIDDEN_TAG in tags:
            if (
                parent is not None
            ):  # an alias: the hidden run's children hang under its nearest visible ancestor
                self._insert(run_id, parent)
            return None
        previous = otel_context.get_current()
        if parent is not None:
            span = self._tracer.start_span(name, context=parent.context, kind=kind, attributes=attributes)
            scope = RunSpan(span, parent.scope)  # what parent.context holds as its current span
        else:
            span = self._tracer.start_span(name, context=previous, kind=kind, attributes=attributes)
            scope = RunSpan(span, trace.get_current_span(previous))
        run_context = trace.set_span_in_context(scope, previous)
        run = _Run(run_id, span, scope, run_context, previous)
        self._insert(run_id, run)
        otel_context.attach(run_context)
        return run

    def _insert(self, run_id: UUID, run: _Run) -> None:
        evicted = None
        with self._lock:
            if len(self._runs) >= self._max_open_runs:
                oldest = next(iter(self._runs))
                evicted = self._runs.pop(oldest)
                evicted = evicted if evicted.run_id == oldest else None
                self.evicted_runs += 1
            self._runs[run_id] = run
        if evicted is not None:
            evicted.scope.run_ended()
            evicted.span.set_status(Status(StatusCode.ERROR, "run never ended"))
            evicted.span.set_attribute(semconv.ERROR_TYPE, EVICTED_ERROR_TYPE)
            evicted.span.end()

    def _end(self, run_id: UUID, error: BaseException | None, response: Any = None) -> None:
        try:
            with self._lock:
                run = self._runs.pop(run_id, None)
            # UUID equality is a Python-level call: the identity test settles the usual case (LangChain passes
            # the same object to start and end).
            if run is None or (run.run_id is not run_id and run.run_id != run_id):
                return  # unknown, evicted, or the alias of a hidden run
            span = run.span
            error_type = None
            if error is not None and not _is_control_flow(error):
                error_type = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"[: self._max_length]))
                span.set_attribute(semconv.ERROR_TYPE, error_type)
                span.record_exception(error)
            if run.llm_labels is not None:
                self._end_llm(run, span, response, error_type)
            run.scope.run_ended()
            span.end()
            if otel_context.get_current() is run.context:
                otel_context.attach(run.previous)
        except Exception:
            _boundary_log.exception("LangChain span not ended")

    def _end_llm(self, run: _Run, span: trace.Span, response: Any, error_type: str | None) -> None:
        input_tokens, output_tokens, response_model, completion = _read_response(response)
        # Collected first and set in one call: each set_attribute takes the span's lock and builds a dict.
        attributes: dict[str, Any] = {}
        if input_tokens is not None:
            attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        if output_tokens is not None:
            attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        if response_model is not None:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = response_model
        if run.capture and completion is not None:
            attributes[semconv.LANGSMITH_COMPLETION] = completion[: self._max_content_length]
        time_to_first_chunk = None
        if run.first is not None:
            time_to_first_chunk = max(run.first - run.started, 0.0)
            attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = time_to_first_chunk
        if attributes:
            span.set_attributes(attributes)
        if time_to_first_chunk is None or self._metrics is None:
            return
        labels = run.llm_labels
        if error_type is not None:
            labels = {**labels, semconv.ERROR_TYPE: error_type}
        self._metrics.time_to_first_chunk.record(time_to_first_chunk, labels)
        if run.chunks > 1:
            self._metrics.time_per_output_chunk.record(
                max(run.last - run.first, 0.0) / (run.chunks - 1), labels
            )


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if _is_mapping(serialized):
        name = serialized.get("name")
        if name:
            return str(name)
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)`` with the common case first: an ABC check costs ~0.3 µs, a dict's type
    check a few ns, and a graph run makes dozens."""
    return type(value) is dict or isinstance(value, Mapping)


_tuple_json: dict[tuple, str] = {}
_metadata_names: dict[Any, str] = {}  # metadata key -> attribute name (keys repeat from run to run)
# (raw model, raw provider) -> (gen_ai.provider.name, gen_ai.request.model): the same few pairs every run.
_llm_identities: dict[tuple[Any, Any], tuple[str, str]] = {}


def _llm_identity(raw_model: Any, raw_provider: Any) -> tuple[str, str]:
    """The normalised provider and model of an LLM run (``unknown`` when not derivable); remembered for text
    values (others, rare, are normalised each time: equal keys of other types could normalise apart)."""
    cacheable = type(raw_model) is str and (raw_provider is None or type(raw_provider) is str)
    identity = _llm_identities.get((raw_model, raw_provider)) if cacheable else None
    if identity is None:
        model = semconv.normalize_model(raw_model)
        provider = (
            semconv.normalize_provider(raw_provider) or semconv.provider_from_model(model) or semconv.UNKNOWN
        )
        identity = (provider, model or semconv.UNKNOWN)
        if cacheable:
            if len(_llm_identities) >= MAX_CACHED_ENTRIES:
                _llm_identities.clear()
            _llm_identities[(raw_model, raw_provider)] = identity
    return identity


def _metadata_name(key: Any) -> str:
    name = semconv.LANGSMITH_METADATA_PREFIX + str(key)
    if len(_metadata_names) >= MAX_CACHED_ENTRIES:
        _metadata_names.clear()
    try:
        _metadata_names[key] = name
    except TypeError:  # an unhashable key cannot be cached (nor come from a real dict)
        pass
    return name


def _attribute_value(value: Any, cap: int) -> Any:
    """A metadata value as an attribute: scalars, capped strings, small lists/dicts as JSON, else None."""
    kind = type(value)
    if kind is str:
        return value[:cap]
    if kind is int or kind is float or kind is bool:
        return value
    if kind is tuple:
        try:
            text = _tuple_json.get(value)
        except TypeError:  # an unhashable item
            return _json(value, cap)
        if text is None:
            text = _json(value, cap)
            if text is not None:
                if len(_tuple_json) >= MAX_CACHED_ENTRIES:
                    _tuple_json.clear()
                _tuple_json[value] = text
        return text
    if isinstance(value, str):
        return value[:cap]
    if isinstance(value, (bool, int, float)):
        return value
    return _json(value, cap) if isinstance(value, (list, tuple, dict)) else None


def _json(value: Any, cap: int) -> str | None:
    if len(value) > MAX_JSON_ITEMS:
        return None
    try:
        return json.dumps(value, default=str, separators=(",", ":"))[:cap]
    except (TypeError, ValueError):
        return None


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in CONTROL_FLOW_ERRORS for cls in type(error).__mro__)


def _content_text(prompt: Any, cap: int) -> str:
    """Prompts (strings) or message lists as ``role: text`` lines, capped; never the full object graph."""
    lines: list[str] = []
    size = 0
    for item in prompt if isinstance(prompt, (list, tuple)) else [prompt]:
        for message in item if isinstance(item, (list, tuple)) else [item]:
            role = getattr(message, "type", None)
            text = getattr(message, "content", message)
            line = f"{role}: {text}" if role else str(text)
            lines.append(line)
            size += len(line)
            if size >= cap:
                return "\n".join(lines)[:cap]
    return "\n".join(lines)[:cap]


def _non_negative_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _read_response(response: Any) -> tuple[int | None, int | None, str | None, str | None]:
    """Input tokens, output tokens, response model and completion text of an LLMResult (None when absent)."""
    generations = getattr(response, "generations", None)
    first = generations[0][0] if generations and generations[0] else None
    message = getattr(first, "message", None)
    usage = getattr(message, "usage_metadata", None)
    input_tokens = output_tokens = None
    if _is_mapping(usage):
        input_tokens = _non_negative_int(usage.get("input_tokens"))
        output_tokens = _non_negative_int(usage.get("output_tokens"))
    llm_output = getattr(response, "llm_output", None)
    llm_output = llm_output if _is_mapping(llm_output) else {}
    if input_tokens is None and output_tokens is None:
        token_usage = llm_output.get("token_usage") or llm_output.get("usage")
        if _is_mapping(token_usage):
            input_tokens = _non_negative_int(
                token_usage.get("prompt_tokens", token_usage.get("input_tokens"))
            )
            output_tokens = _non_negative_int(
                token_usage.get("completion_tokens", token_usage.get("output_tokens"))
            )
    response_metadata = getattr(message, "response_metadata", None)
    response_model = None
    if _is_mapping(response_metadata):
        response_model = response_metadata.get("model_name") or response_metadata.get("model")
    response_model = semconv.normalize_model(response_model or llm_output.get("model_name"))
    completion = getattr(first, "text", None)
    return input_tokens, output_tokens, response_model, completion if isinstance(completion, str) else None


class LangChainInstrumentor(BaseInstrumentor):
    """Registers :class:`OpenTelemetryCallbackHandler` for every LangChain/LangGraph run, with no app code.

    ``LangChainInstrumentor().instrument(tracer_provider=..., meter_provider=...)``; loaded by
    ``opentelemetry-instrument`` through the ``otel_llm_langchain`` entry point. The handler is injected the
    way LangSmith's own tracer is: a ``langchain_core`` configure hook, whose context variable defaults to the
    handler so every thread and task sees it. Also applies ``langsmith_bridge`` (no run traced twice when
    LangSmith tracing is on). Reads OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, and through
    ``current_settings()`` (configure()'s overrides included) OTEL_LLM_LANGCHAIN_MAX_OPEN_RUNS,
    OTEL_LLM_LANGCHAIN_MAX_ATTRIBUTE_LENGTH, OTEL_LLM_LANGCHAIN_MAX_CONTENT_LENGTH.
    """

    handler: OpenTelemetryCallbackHandler | None = None
    _hook: tuple[ContextVar[Any], bool, None, None] | None = None
    _undo_bridge: Callable[[], None] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("langchain-core >= 0.3",)

    def _instrument(self, **kwargs: Any) -> None:
        from langchain_core.tracers.context import _configure_hooks

        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=kwargs.get("tracer_provider"))
        settings = current_settings()
        handler = OpenTelemetryCallbackHandler(
            tracer,
            StreamMetrics(kwargs.get("meter_provider")),
            max_open_runs=settings.langchain_max_open_runs,
            max_attribute_length=settings.langchain_max_attribute_length,
            capture_content=env_bool(ENV_CAPTURE_CONTENT, False),
            max_content_length=settings.langchain_max_content_length,
        )
        # (context var, inheritable, handler class, env var): with no class LangChain adds var.get() to every
        # run's callback manager, once (identity check).
        _observe_state(handler, kwargs.get("meter_provider"))
        hook = (ContextVar("otel_llm_langchain_handler", default=handler), True, None, None)
        _configure_hooks.append(hook)
        self.handler, self._hook = handler, hook
        self._undo_bridge = langsmith_bridge.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        from langchain_core.tracers.context import _configure_hooks

        if self._hook in _configure_hooks:
            _configure_hooks.remove(self._hook)
        if self._undo_bridge is not None:
            self._undo_bridge()
        self.handler = self._hook = self._undo_bridge = None


def _observe_state(handler: OpenTelemetryCallbackHandler, meter_provider: Any) -> None:
    """``otel_llm.langchain.open_runs`` (now) and ``otel_llm.langchain.evicted_runs`` (since start)."""
    meter = metrics.get_meter(TRACER_NAME, meter_provider=meter_provider)
    meter.create_observable_up_down_counter(
        METRIC_OPEN_RUNS,
        [lambda options: [metrics.Observation(handler.open_runs)]],
        "{run}",
        "LangChain runs started and not yet ended",
    )
    meter.create_observable_counter(
        METRIC_EVICTED_RUNS,
        [lambda options: [metrics.Observation(handler.evicted_runs)]],
        "{run}",
        "LangChain runs that never ended, ended by the cap OTEL_LLM_LANGCHAIN_MAX_OPEN_RUNS",
    )
