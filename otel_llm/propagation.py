"""Trace context and baggage across a message queue: inject into message fields, extract in the consumer.

Adds two spans per message, following the OpenTelemetry messaging semantic conventions: a PRODUCER span around
the send (``send <destination>``) whose context is written into the message, and a CONSUMER span around the
handler (``process <destination>``) whose parent is that PRODUCER span, so one request stays one trace across
the queue. Both carry ``messaging.system``, ``messaging.destination.name``, ``messaging.operation.type`` and
``messaging.operation.name``; the consumer adds ``messaging.message.id`` and ``messaging.consumer.group.name``
when given. While the handler runs, the message's baggage is current, so baggage-copying span processors see
it.

The carrier is any mapping of fields: Redis Streams fields (``bytes`` keys and values unless the client
decodes), AMQP headers (aio-pika ``Message.headers``), Celery-style task headers. Injection writes
``traceparent``, ``tracestate`` (when set) and ``baggage`` as strings.

The W3C TraceContext and Baggage propagators are used directly, not the global ones: the global baggage
propagator of an edge service drops untrusted incoming baggage, while this hop is internal and trusted.

Cost: one span and one header serialisation per send; one parse and one span per message consumed. Propagation
never raises into the application: a failure to inject or extract is logged (rate limited) and the message
goes on without context; an exception of the handler itself is recorded on the CONSUMER span and re-raised
unchanged.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_llm import semconv

_logger = logging.getLogger(__name__)

# Every header the propagators read or write, in lower case (some brokers lower-case header names).
PROPAGATION_FIELDS = ("traceparent", "tracestate", "baggage")
OPERATION_SEND = "send"
OPERATION_PROCESS = "process"
LOG_INTERVAL_SECONDS = 60.0

_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_GLOBAL_TRACER = trace.get_tracer(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Any])


class _RateLimitedLog:
    """Logs a failure at most once per interval so a broken carrier on every message cannot flood the log."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._next = 0.0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return
            self._next = now + self._interval
        _logger.warning(message, *args, exc_info=True)


_failures = _RateLimitedLog(LOG_INTERVAL_SECONDS)


def _as_str(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


class _FieldGetter(Getter[Mapping[Any, Any]]):
    """Reads a field whether the mapping holds ``str`` or ``bytes`` keys and values, in any letter case."""

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        for candidate in (key, key.encode()):
            if candidate in carrier:
                value = carrier[candidate]
                break
        else:
            value = next((v for k, v in carrier.items() if _as_str(k).lower() == key), None)
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [_as_str(item) for item in value]
        return [_as_str(value)]

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        return [_as_str(key) for key in carrier]


class _FieldSetter(Setter[MutableMapping[Any, Any]]):
    def set(self, carrier: MutableMapping[Any, Any], key: str, value: str) -> None:
        carrier[key] = value


_GETTER = _FieldGetter()
_SETTER = _FieldSetter()


def inject(
    carrier: MutableMapping[Any, Any], context: otel_context.Context | None = None
) -> MutableMapping[Any, Any]:
    """Writes the trace context and baggage of ``context`` (default: current) into ``carrier``; returns it."""
    try:
        _PROPAGATOR.inject(carrier, context=context, setter=_SETTER)
    except Exception:
        _failures.warning("otel_llm.propagation: could not inject trace context into the message")
    return carrier


def extract(
    carrier: Mapping[Any, Any] | None, context: otel_context.Context | None = None
) -> otel_context.Context:
    """The span context and baggage carried by ``carrier``; an empty or malformed one gives ``context``."""
    base = context if context is not None else otel_context.Context()
    if not carrier or not isinstance(carrier, Mapping):
        return base
    try:
        return _PROPAGATOR.extract(carrier, context=base, getter=_GETTER)
    except Exception:
        _failures.warning("otel_llm.propagation: could not extract trace context from the message")
        return base


@contextmanager
def baggage_entries(entries: Mapping[str, Any]) -> Iterator[otel_context.Context]:
    """Adds ``entries`` to the current baggage for the block (None values are skipped, others made text).

    Used by the producer before :func:`producer_span`, e.g. ``baggage_entries({"session.id": session_id})``.
    """
    ctx = otel_context.get_current()
    for key, value in entries.items():
        if value is not None:
            ctx = baggage.set_baggage(key, _as_str(value), ctx)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def _tracer(tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
    if tracer_provider is None:
        return _GLOBAL_TRACER
    return trace.get_tracer(__name__, tracer_provider=tracer_provider)


def _messaging_attributes(
    system: str, destination: str, operation_type: str, operation_name: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    attributes = {
        MESSAGING_SYSTEM: system,
        MESSAGING_DESTINATION_NAME: destination,
        MESSAGING_OPERATION_TYPE: operation_type,
        MESSAGING_OPERATION_NAME: operation_name,
    }
    attributes.update((key, value) for key, value in extra.items() if value is not None)
    return attributes


@contextmanager
def _messaging_span(
    tracer_provider: trace.TracerProvider | None, name: str, kind: SpanKind, attributes: Mapping[str, Any]
) -> Iterator[trace.Span]:
    """The span, current for the block; an exception of the block marks it failed and propagates."""
    with _tracer(tracer_provider).start_as_current_span(
        name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
            raise


@contextmanager
def producer_span(
    carrier: MutableMapping[Any, Any],
    destination: str,
    *,
    system: str,
    operation_name: str = OPERATION_SEND,
    attributes: Mapping[str, Any] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[trace.Span]:
    """A PRODUCER span ``send <destination>`` around the send; its context and baggage go into ``carrier``.

    Put the message's fields in ``carrier`` and send them inside the block::

        fields = {"job_id": job_id}
        with producer_span(fields, "chat:jobs", system="redis") as span:
            message_id = redis.xadd("chat:jobs", fields)
            span.set_attribute("messaging.message.id", message_id)
    """
    span_attributes = _messaging_attributes(
        system, destination, OPERATION_SEND, operation_name, attributes or {}
    )
    with _messaging_span(
        tracer_provider, f"{operation_name} {destination}", SpanKind.PRODUCER, span_attributes
    ) as span:
        inject(carrier)
        yield span


@contextmanager
def consumer_span(
    carrier: Mapping[Any, Any] | None,
    destination: str,
    *,
    system: str,
    message_id: Any = None,
    consumer_group: str | None = None,
    operation_name: str = OPERATION_PROCESS,
    attributes: Mapping[str, Any] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[trace.Span]:
    """Runs the block in the message's context under a CONSUMER span ``process <destination>``.

    The span's parent is the producer's span from ``carrier``; the message's baggage is current in the block.
    An exception from the block is recorded on the span (status ERROR, ``error.type``) and re-raised.
    """
    extra = {
        MESSAGING_MESSAGE_ID: _as_str(message_id) if message_id is not None else None,
        MESSAGING_CONSUMER_GROUP_NAME: consumer_group,
    }
    extra.update(attributes or {})
    span_attributes = _messaging_attributes(system, destination, OPERATION_PROCESS, operation_name, extra)
    token = otel_context.attach(extract(carrier))
    try:
        with _messaging_span(
            tracer_provider, f"{operation_name} {destination}", SpanKind.CONSUMER, span_attributes
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


def consumer(
    destination: str,
    *,
    system: str,
    carrier: Callable[..., Mapping[Any, Any] | None],
    message_id: Callable[..., Any] | None = None,
    consumer_group: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Callable[[Handler], Handler]:
    """Decorates a message handler (sync or ``async``) so that it runs inside :func:`consumer_span`.

    ``carrier`` and ``message_id`` get the handler's arguments and return the message's fields and id::

        @consumer("chat", system="rabbitmq", carrier=lambda message: message.headers,
                  message_id=lambda message: message.message_id)
        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None: ...
    """

    def span_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            fields = carrier(*args, **kwargs)
            identifier = message_id(*args, **kwargs) if message_id is not None else None
        except Exception:
            _failures.warning("otel_llm.propagation: the carrier callable of %s failed", destination)
            fields, identifier = None, None
        return consumer_span(
            fields,
            destination,
            system=system,
            message_id=identifier,
            consumer_group=consumer_group,
            tracer_provider=tracer_provider,
        )

    def decorate(handler: Handler) -> Handler:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with span_for(args, kwargs):
                    return await handler(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with span_for(args, kwargs):
                return handler(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
