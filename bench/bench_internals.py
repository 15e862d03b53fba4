"""What each private internal kept for speed (otel_llm/_internals.py) saves on the application thread.

``BaggageAttributesProcessor.on_start`` on live spans whose context holds 2 allowlisted baggage entries (case
(b) of bench_processors.py), as shipped against the same with one internal replaced by its public path:
  - no fast write: ``Span.set_attributes`` instead of writing into the SDK's attribute store;
  - no baggage key: ``baggage.get_all`` instead of the context's own dict (a new proxy per call, so the
    processor cannot know the request's baggage by identity and cleans it again for every span);
  - public only: both.
Spans are made before a timed loop; the loop is timed in the thread's CPU time (``time.thread_time_ns``),
variants interleaved in rotating order, best and median loop per call. Compare within one run.

Run: .venv/bin/python bench/bench_internals.py [--spans 2000] [--rounds 31]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Iterator, Sequence

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider

from otel_llm import semconv
from otel_llm.processors import baggage as baggage_processor
from otel_llm.processors.baggage import BaggageAttributesProcessor


def _refuse(span, attributes) -> bool:
    return False  # the fast write declining: the processor calls Span.set_attributes


@contextlib.contextmanager
def public(fast_write: bool, baggage_key: bool) -> Iterator[None]:
    """The processor with the chosen internals swapped for their public path, for one timed loop."""
    saved = baggage_processor.write_clean_attributes, baggage_processor.baggage_of
    if not fast_write:
        baggage_processor.write_clean_attributes = _refuse
    if not baggage_key:
        baggage_processor.baggage_of = baggage.get_all
    try:
        yield
    finally:
        baggage_processor.write_clean_attributes, baggage_processor.baggage_of = saved


VARIANTS = {
    "as shipped (both internals)": (True, True),
    "no fast write (set_attributes)": (False, True),
    "no baggage key (get_all)": (True, False),
    "public only": (False, False),
}


def time_loop(variant: tuple[bool, bool], count: int, tracer, parent: Context) -> float:
    processor = BaggageAttributesProcessor()
    spans = [tracer.start_span("work") for _ in range(count)]
    gc.collect()
    with public(*variant):
        started = time.thread_time_ns()
        for span in spans:
            processor.on_start(span, parent)
        elapsed = time.thread_time_ns() - started
    assert spans[-1].attributes.get(semconv.EXPERIMENT_ARM), "the processor wrote nothing"
    return elapsed / count / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000, help="on_start calls per loop (default 2000)")
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (default 31)")
    args = parser.parse_args(argv)
    tracer = TracerProvider().get_tracer("bench")
    parent = baggage.set_baggage(semconv.EXPERIMENT_ARM, "aws.bedrock:claude-3-haiku", Context())
    parent = baggage.set_baggage(semconv.SESSION_ID, "session-0123456789", parent)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for index in range(args.rounds):
        for name in names[index % len(names):] + names[: index % len(names)]:
            samples[name].append(time_loop(VARIANTS[name], args.spans, tracer, parent))
    shipped = min(samples[names[0]])
    print(f"# Internals kept for speed (python {sys.version.split()[0]}, {args.spans} spans x "
          f"{args.rounds} rounds)")
    print("\nBaggageAttributesProcessor.on_start, 2 allowlisted entries, µs per span:\n")
    print("| variant | best | median | best - shipped |")
    print("|---|---|---|---|")
    for name in names:
        best = min(samples[name])
        print(f"| {name} | {best:.2f} | {statistics.median(samples[name]):.2f} | {best - shipped:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
