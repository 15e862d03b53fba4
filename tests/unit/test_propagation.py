"""Queue propagation: inject/extract of trace context and baggage, PRODUCER/CONSUMER spans, the decorator."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm import semconv
from otel_llm.processors.baggage import EdgeBaggagePropagator
from otel_llm.propagation import (
    baggage_entries,
    consumer,
    consumer_span,
    extract,
    inject,
    producer_span,
)

DESTINATION = "chat:jobs"


@pytest.fixture
def traced():
    """A real provider with an in-memory exporter: (provider, exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def in_thread(function):
    """Runs ``function`` in a fresh thread (fresh OTel context, like another process); returns its result."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()))
    thread.start()
    thread.join()
    return result["value"]


class TestInjectExtract:
    def test_round_trip_keeps_span_context_and_baggage(self, traced):
        """What inject writes, extract reads back: the same span context and every baggage entry."""
        provider, _ = traced
        fields: dict = {"job_id": "j1"}
        with baggage_entries({semconv.SESSION_ID: "s-1", "custom.key": "v"}):
            with provider.get_tracer("t").start_as_current_span("send") as span:
                inject(fields)
        assert set(fields) >= {"traceparent", "baggage", "job_id"}
        restored = extract(fields)
        assert trace.get_current_span(restored).get_span_context().span_id == span.get_span_context().span_id
        assert baggage.get_all(restored) == {semconv.SESSION_ID: "s-1", "custom.key": "v"}

    def test_extract_reads_redis_bytes_fields(self, traced):
        """Fields as a Redis client returns them (bytes keys and values) give the same context."""
        provider, _ = traced
        with provider.get_tracer("t").start_as_current_span("send") as span:
            fields = inject({})
        raw = {key.encode(): value.encode() for key, value in fields.items()}
        assert (
            trace.get_current_span(extract(raw)).get_span_context().trace_id
            == span.get_span_context().trace_id
        )

    def test_extract_reads_header_names_in_any_case(self, traced):
        """AMQP headers whose names a broker capitalised still carry the context."""
        provider, _ = traced
        with provider.get_tracer("t").start_as_current_span("send") as span:
            fields = inject({})
        headers = {"Traceparent": fields["traceparent"]}
        assert (
            trace.get_current_span(extract(headers)).get_span_context().span_id
            == span.get_span_context().span_id
        )

    @pytest.mark.parametrize(
        "carrier",
        [
            None,
            {},
            "not a mapping",
            {"traceparent": "garbage"},
            {"traceparent": 12345},
            {"baggage": "%%%;;=="},
            {b"traceparent": b"\xff\xfe"},
        ],
    )
    def test_missing_or_malformed_context_gives_an_empty_context(self, carrier):
        """No, malformed or non-text context gives no parent and no baggage, never an exception."""
        restored = extract(carrier)
        assert not trace.get_current_span(restored).get_span_context().is_valid
        assert baggage.get_all(restored) == {}

    def test_internal_hop_keeps_baggage_the_edge_propagator_drops(self):
        """The queue hop is trusted: baggage the HTTP edge drops (untrusted, not allowlisted) survives."""
        with baggage_entries({"tenant.tier": "gold"}):
            fields = inject({})
        assert baggage.get_baggage("tenant.tier", extract(fields)) == "gold"
        assert (
            baggage.get_baggage("tenant.tier", EdgeBaggagePropagator(trust_incoming=False).extract(fields))
            is None
        )

    def test_inject_into_a_broken_carrier_never_raises(self, traced, caplog):
        """A carrier that refuses writes is logged and returned; the send goes on."""

        class ReadOnly(dict):
            def __setitem__(self, key, value):
                raise TypeError("read-only")

        provider, _ = traced
        carrier = ReadOnly()
        with caplog.at_level(logging.WARNING, logger="otel_llm.propagation"):
            with provider.get_tracer("t").start_as_current_span("send"):
                assert inject(carrier) is carrier
        assert carrier == {}

    def test_baggage_entries_skip_none_and_stringify_values(self):
        """None values are left out, other values become text, and the block's baggage ends with it."""
        with baggage_entries({"a": None, "b": 7}):
            assert baggage.get_all() == {"b": "7"}
        assert baggage.get_all() == {}


class TestProducerConsumerSpans:
    def test_consumer_span_is_the_child_of_the_producer_span_across_the_message(self, traced):
        """A consumer in another thread continues the producer's trace: CONSUMER span under PRODUCER."""
        provider, exporter = traced
        fields: dict = {}
        with producer_span(fields, DESTINATION, system="redis", tracer_provider=provider):
            pass

        def consume():
            with consumer_span(
                fields,
                DESTINATION,
                system="redis",
                message_id=b"1-0",
                consumer_group="workers",
                tracer_provider=provider,
            ):
                return baggage.get_all()

        in_thread(consume)
        produced, consumed = exporter.get_finished_spans()
        assert (produced.kind, consumed.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
        assert (produced.name, consumed.name) == (f"send {DESTINATION}", f"process {DESTINATION}")
        assert consumed.parent.span_id == produced.context.span_id
        assert consumed.context.trace_id == produced.context.trace_id
        assert consumed.attributes["messaging.system"] == "redis"
        assert consumed.attributes["messaging.destination.name"] == DESTINATION
        assert consumed.attributes["messaging.operation.type"] == "process"
        assert consumed.attributes["messaging.message.id"] == "1-0"
        assert consumed.attributes["messaging.consumer.group.name"] == "workers"
        assert produced.attributes["messaging.operation.type"] == "send"

    def test_message_baggage_is_current_inside_the_consumer_and_gone_after(self, traced):
        """The producer's baggage is current while the handler runs and detached when it returns."""
        provider, _ = traced
        with baggage_entries({semconv.SESSION_ID: "s-9"}):
            with producer_span(fields := {}, DESTINATION, system="redis", tracer_provider=provider):
                pass

        def consume():
            with consumer_span(fields, DESTINATION, system="redis", tracer_provider=provider):
                inside = baggage.get_baggage(semconv.SESSION_ID)
            return inside, baggage.get_baggage(semconv.SESSION_ID)

        assert in_thread(consume) == ("s-9", None)

    def test_consumer_without_context_starts_a_new_trace(self, traced):
        """A message with no trace context gives a root CONSUMER span."""
        provider, exporter = traced
        with consumer_span({"job_id": "x"}, DESTINATION, system="redis", tracer_provider=provider):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.parent is None and span.kind == SpanKind.CONSUMER

    def test_handler_error_is_recorded_and_reraised(self, traced):
        """The handler's exception reaches the caller unchanged and marks the CONSUMER span as failed."""
        provider, exporter = traced
        with pytest.raises(ValueError, match="bad job"):
            with consumer_span({}, DESTINATION, system="redis", tracer_provider=provider):
                raise ValueError("bad job")
        (span,) = exporter.get_finished_spans()
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        assert [event.name for event in span.events] == ["exception"]


class TestConsumerDecorator:
    def test_sync_handler_runs_in_the_message_context(self, traced):
        """A decorated handler sees the message's span as parent of its CONSUMER span and its baggage."""
        provider, exporter = traced
        with baggage_entries({semconv.SESSION_ID: "s-2"}):
            with producer_span(fields := {}, DESTINATION, system="redis", tracer_provider=provider):
                pass

        @consumer(
            DESTINATION,
            system="redis",
            carrier=lambda message: message["fields"],
            message_id=lambda message: message["id"],
            tracer_provider=provider,
        )
        def handle(message):
            return baggage.get_baggage(semconv.SESSION_ID)

        assert in_thread(lambda: handle({"fields": fields, "id": "7-0"})) == "s-2"
        produced, consumed = exporter.get_finished_spans()
        assert consumed.parent.span_id == produced.context.span_id
        assert consumed.attributes["messaging.message.id"] == "7-0"

    def test_async_handler_runs_in_the_message_context(self, traced):
        """An ``async`` handler is awaited inside its CONSUMER span, parented by the message's context."""
        provider, exporter = traced
        with producer_span(fields := {}, DESTINATION, system="rabbitmq", tracer_provider=provider):
            pass

        @consumer(DESTINATION, system="rabbitmq", carrier=lambda headers: headers, tracer_provider=provider)
        async def handle(headers):
            return trace.get_current_span().get_span_context().trace_id

        trace_id = asyncio.run(handle(fields))
        produced, consumed = exporter.get_finished_spans()
        assert trace_id == produced.context.trace_id == consumed.context.trace_id
        assert consumed.parent.span_id == produced.context.span_id

    def test_failing_carrier_callable_still_runs_the_handler(self, traced):
        """When the carrier callable raises, the handler still runs, in a new trace."""
        provider, exporter = traced

        @consumer(
            DESTINATION, system="redis", carrier=lambda message: message.missing, tracer_provider=provider
        )
        def handle(message):
            return "handled"

        assert handle(object()) == "handled"
        (span,) = exporter.get_finished_spans()
        assert span.parent is None

    def test_context_after_the_handler_is_the_one_before(self, traced):
        """The decorator detaches what it attached: the caller's context is unchanged afterwards."""
        provider, _ = traced
        before = context.get_current()

        @consumer(DESTINATION, system="redis", carrier=lambda fields: fields, tracer_provider=provider)
        def handle(fields):
            return None

        handle({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        assert context.get_current() == before
