"""Text rendering of ``otel_llm.traces.Trace`` objects: a trace as a tree, a per-provider/model summary, a
trace table.

Used by ``otel-llm demo`` (spans of its embedded run) and ``otel-llm search`` (traces from Jaeger), so both
print the same shapes. Pure functions from traces to lines; no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from otel_llm import semconv
from otel_llm.traces import LlmCall, Span, Trace

PERCENTILES = (50, 95)
NO_VALUE = "-"
# Consecutive identical leaf siblings from this many on are drawn as one line (count and total duration).
COLLAPSE_MIN_RUN = 3


def format_duration(microseconds: float) -> str:
    """A duration for people: ``0.42 ms``, ``12.3 ms``, ``512 ms``, ``1.24 s``."""
    milliseconds = microseconds / 1000
    if milliseconds < 10:
        return f"{milliseconds:.2f} ms"
    if milliseconds < 100:
        return f"{milliseconds:.1f} ms"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.2f} s"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned columns separated by two spaces; the header underlined."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[index]) for row in text_rows]) for index, header in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * width for width in widths])] + [line(row) for row in text_rows]


def percentile(values: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile (``rank`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, -(-rank * len(ordered) // 100) - 1))
    return ordered[int(index)]


def _tokens(input_tokens: int, output_tokens: int) -> str:
    return f"tokens {input_tokens} in / {output_tokens} out"


def _span_label(span: Span, parent_service: str | None, call: LlmCall | None) -> str:
    # An LLM span's name usually repeats its model ("chat gpt-4o-mini"); say it once, with the provider.
    parts = [span.name] if call is None or call.model not in span.name else []
    if span.service != parent_service:
        parts.append(f"[{span.service}]")
    node = span.node
    if node and call is None and node != span.name:
        parts.append(f"node={node}")
    elif node and call is None:
        parts.append("(node)")
    if call is not None:
        parts.append(f"LLM {call.provider}/{call.model}")
    parts.append(format_duration(span.duration_us))
    if call is not None:
        parts.append(_tokens(call.input_tokens, call.output_tokens))
    elif span.service != parent_service:
        parts.extend(_local_root_facts(span.attributes))
    if span.error:
        parts.append("ERROR")
    return "  ".join(parts)


def _local_root_facts(attributes: Mapping[str, object]) -> list[str]:
    """What otel-llm put on a process's entry span: the assigned arm and the roll-up of the calls beneath.

    Shown only where a service starts (the spans people search and alert on), not on every node that carries a
    roll-up too, so the tree stays readable.
    """
    facts = []
    arm = attributes.get(semconv.EXPERIMENT_ARM)
    if arm:
        facts.append(f"arm {arm}")
    calls = attributes.get(semconv.ROLLUP_CALLS)
    if calls:
        provider = attributes.get(semconv.ROLLUP_PROVIDER, semconv.UNKNOWN)
        model = attributes.get(semconv.ROLLUP_MODEL, semconv.UNKNOWN)
        facts.append(f"rollup {provider}/{model} ({calls} calls)")
    return facts


def _collapsed_walk(trace: Trace, calls: Mapping[str, LlmCall]) -> Iterator[tuple[int, list[Span], bool]]:
    """``trace.walk()`` as (depth, spans, is_last), runs of identical plain leaf siblings merged as one item.

    A run: ``COLLAPSE_MIN_RUN`` or more consecutive siblings of one name and service, without children or LLM
    calls (e.g. an XADD per streamed token).
    """
    items = list(trace.walk())

    def plain_leaf(span: Span) -> bool:
        return span.span_id not in trace.children and span.span_id not in calls

    index = 0
    while index < len(items):
        depth, first, _ = items[index]
        end = index + 1
        if plain_leaf(first):
            while (
                end < len(items)
                and items[end][0] == depth
                and plain_leaf(items[end][1])
                and (
                    items[end][1].parent_id,
                    items[end][1].name,
                    items[end][1].service,
                )
                == (first.parent_id, first.name, first.service)
            ):
                end += 1
        run = end - index if end - index >= COLLAPSE_MIN_RUN else 1
        yield depth, [span for _, span, _ in items[index : index + run]], items[index + run - 1][2]
        index += run


def _run_label(spans: Sequence[Span], parent_service: str | None) -> str:
    parts = [spans[0].name]
    if spans[0].service != parent_service:
        parts.append(f"[{spans[0].service}]")
    parts.append(f"×{len(spans)}  {format_duration(sum(span.duration_us for span in spans))} in total")
    if any(span.error for span in spans):
        parts.append("ERROR")
    return "  ".join(parts)


def render_tree(trace: Trace) -> list[str]:
    """The trace as a tree: service where it changes, LangGraph node, LLM provider/model, duration, tokens.

    Runs of identical leaf siblings (an XADD per streamed token) are one line with their count and total time.
    """
    calls = {call.span.span_id: call for call in trace.llm_calls}
    services = {span.span_id: span.service for span in trace.spans}
    header = (
        f"trace {trace.trace_id}  {' -> '.join(trace.services)}  {format_duration(trace.duration_us)}  "
        f"{trace.call_count} LLM calls  {_tokens(trace.input_tokens, trace.output_tokens)}"
    )
    lines = [header + ("  ERROR" if trace.error else "")]
    # open_levels[d]: the ancestor at depth d still has siblings below it, so its vertical bar continues.
    open_levels: list[bool] = []
    for depth, spans, last in _collapsed_walk(trace, calls):
        del open_levels[depth:]
        prefix = "".join("│   " if still_open else "    " for still_open in open_levels[1:])
        branch = "" if depth == 0 else ("└── " if last else "├── ")
        span = spans[0]
        parent_service = services.get(span.parent_id) if span.parent_id else None
        label = (
            _span_label(span, parent_service, calls.get(span.span_id))
            if len(spans) == 1
            else _run_label(spans, parent_service)
        )
        lines.append(prefix + branch + label)
        open_levels.append(not last)
    return lines


def summary_rows(traces: Iterable[Trace]) -> list[dict[str, object]]:
    """One row per provider/model over all LLM calls: calls, errors, p50/p95 duration (ms), tokens."""
    grouped: dict[tuple[str, str], list[LlmCall]] = defaultdict(list)
    for trace in traces:
        for call in trace.llm_calls:
            grouped[(call.provider, call.model)].append(call)
    rows = []
    for (provider, model), calls in sorted(grouped.items()):
        durations = [call.span.duration_us for call in calls]
        rows.append(
            {
                "provider": provider,
                "model": model,
                "calls": len(calls),
                "errors": sum(call.span.error for call in calls),
                **{f"p{rank}_ms": percentile(durations, rank) / 1000 for rank in PERCENTILES},
                "input_tokens": sum(call.input_tokens for call in calls),
                "output_tokens": sum(call.output_tokens for call in calls),
            }
        )
    return rows


def render_summary(traces: Iterable[Trace]) -> list[str]:
    """``summary_rows`` as a table."""
    rows = [
        [
            row["provider"],
            row["model"],
            row["calls"],
            row["errors"],
            *(format_duration(row[f"p{rank}_ms"] * 1000) for rank in PERCENTILES),
            row["input_tokens"],
            row["output_tokens"],
        ]
        for row in summary_rows(traces)
    ]
    headers = [
        "PROVIDER",
        "MODEL",
        "CALLS",
        "ERRORS",
        *(f"P{rank}" for rank in PERCENTILES),
        "TOKENS IN",
        "TOKENS OUT",
    ]
    return format_table(headers, rows)


def render_trace_table(traces: Iterable[Trace]) -> list[str]:
    """A row per trace: id, UTC start, root operation, duration, provider/model, LLM calls, tokens, error."""
    rows = []
    for trace in traces:
        provider_models = (
            ", ".join(sorted({f"{call.provider}/{call.model}" for call in trace.llm_calls}))
            or "/".join(filter(None, (",".join(trace.providers), ",".join(trace.models))))
            or NO_VALUE
        )
        rows.append(
            [
                trace.trace_id,
                datetime.fromtimestamp(trace.start_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                f"{trace.root.service}: {trace.root.name}",
                format_duration(trace.duration_us),
                provider_models,
                trace.call_count,
                trace.input_tokens + trace.output_tokens,
                "yes" if trace.error else "no",
            ]
        )
    return format_table(
        ["TRACE ID", "START (UTC)", "ROOT", "DURATION", "PROVIDER/MODEL", "LLM CALLS", "TOKENS", "ERROR"],
        rows,
    )
