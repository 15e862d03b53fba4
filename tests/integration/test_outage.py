"""Jaeger down for 20 s under steady load: the collector's persistent sending queue delivers every span
afterwards, and badger keeps what was stored before the restart."""

from __future__ import annotations

import time

from tests.support.poll import poll
from tests.support.queries import spans_of
from tests.support.senders import sdk_tracer_provider, unique_service

OUTAGE_SECONDS = 20.0
SEND_INTERVAL_SECONDS = 0.2  # steady load: 5 traces a second (pacing, not synchronisation)
SEQUENCE_ATTRIBUTE = "test.sequence"
TRACES_BEFORE, TRACES_AFTER = 10, 10
QUERY_LIMIT = 1000


def test_spans_sent_while_jaeger_is_down_arrive_after_restart(stack):
    """Every trace sent before, during and after a 20 s Jaeger outage is in Jaeger once it is back."""
    service = unique_service("outage")
    provider = sdk_tracer_provider(stack.otlp_grpc_endpoint, service)
    tracer = provider.get_tracer("test")
    sequence = 0

    def send(count: int | None = None, until: float | None = None) -> None:
        nonlocal sequence
        while (count is not None and count > 0) or (until is not None and time.monotonic() < until):
            with tracer.start_as_current_span("work") as span:
                span.set_attribute(SEQUENCE_ATTRIBUTE, sequence)
            sequence += 1
            count = count - 1 if count is not None else None
            time.sleep(SEND_INTERVAL_SECONDS)

    def stored() -> set[int]:
        traces = stack.find_traces(service, limit=QUERY_LIMIT, lookback="2h")
        return {int(span.attributes[SEQUENCE_ATTRIBUTE]) for span in spans_of(traces)}

    try:
        send(count=TRACES_BEFORE)
        before = set(range(sequence))
        poll(lambda: stored() >= before, timeout=60, message="the traces sent before the outage in Jaeger")

        stack.stop_jaeger()
        first_during = sequence
        send(until=time.monotonic() + OUTAGE_SECONDS)
        during = set(range(first_during, sequence))
        stack.start_jaeger()
        send(count=TRACES_AFTER)
        provider.force_flush()
    finally:
        stack.start_jaeger()  # no-op when running; keeps the session stack whole if the test failed midway
        provider.shutdown()

    assert len(during) >= OUTAGE_SECONDS / SEND_INTERVAL_SECONDS / 2, "the load generator fell far behind"
    every = set(range(sequence))
    found = poll(lambda: (seen := stored()) == every and seen, timeout=120,
                 message=f"all {len(every)} traces (during the outage: {len(during)}) in Jaeger")
    assert before <= found  # badger kept what was stored before the restart
    assert during <= found
