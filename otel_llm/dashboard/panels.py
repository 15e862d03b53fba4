"""What the dashboard shows, section by section: each panel's title, the question it answers, its queries.

Plain data (``Panel``), built into Grafana JSON by ``otel_llm.dashboard.build``. Sections, top to bottom:
LLM calls and requests per provider/model/arm (one row per ``queries.REQUESTS`` entry), tokens, cost, the
token-streaming panels of the Eco2 agent's section 6 (docs/reference-app.md), experiment arms, and one panel
per alert rule of prometheus/rules/.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from otel_llm.dashboard import queries as q
from otel_llm.dashboard.queries import GENAI, STREAM, AlertView, Requests

ARM = GENAI.arm
ARM_LEGEND = q.legend(ARM)


@dataclass(frozen=True)
class Panel:
    """One panel: ``targets`` are (PromQL, legend) pairs; ``width``/``height`` in grid units (24 wide)."""

    title: str
    question: str
    targets: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"  # "timeseries", "stat" or "bargauge"
    width: int = 8
    height: int = 8
    threshold: float | None = None


@dataclass(frozen=True)
class Section:
    title: str
    panels: tuple[Panel, ...]


def requests_section(requests: Requests) -> Section:
    """Rate, error ratio and p50/p95/p99 latency of ``requests`` per provider/model/arm."""
    name = requests.title
    latency = tuple(
        Panel(
            f"{name}: p{round(quantile * 100)} latency by provider/model/arm",
            f"How long do {name} take, at the {round(quantile * 100)}th percentile, per provider, model and "
            "arm?",
            ((requests.quantile(quantile), requests.legend),),
            unit=requests.unit,
        )
        for quantile in q.QUANTILES
    )
    return Section(
        f"{name} by provider, model and experiment arm",
        (
            Panel(
                f"{name}/sec by provider/model/arm",
                f"How many {name} per second does each provider, model and arm serve?",
                ((requests.rate(), requests.legend),),
                unit="reqps",
                width=12,
            ),
            Panel(
                f"{name}: error ratio by provider/model/arm",
                f"Which share of {name} fails, per provider, model and arm (0 where none failed)?",
                ((requests.error_ratio(), requests.legend),),
                unit="percentunit",
                width=12,
            ),
            *latency,
        ),
    )


def tokens_section() -> Section:
    by = f"{GENAI.provider}, {GENAI.model}, {ARM}, {q.TOKEN_TYPE}"
    legend = q.legend(q.TOKEN_TYPE, GENAI.provider, GENAI.model, ARM)
    usage = q.TOKEN_USAGE_HISTOGRAM
    return Section(
        "Tokens by provider, model and experiment arm",
        (
            Panel(
                "Tokens/sec by provider/model/arm",
                "How many input and output tokens per second go to each provider, model and arm (billed)?",
                ((f"sum by ({by}) ({q.rate(GENAI.selector(f'{usage}_sum'))})", legend),),
                width=12,
            ),
            Panel(
                "Tokens per LLM call by provider/model/arm",
                "How many input and output tokens does one call use, per provider, model and arm?",
                (
                    (
                        f"sum by ({by}) ({q.rate(GENAI.selector(f'{usage}_sum'))}) / "
                        f"sum by ({by}) ({q.rate(GENAI.selector(f'{usage}_count'))})",
                        legend,
                    ),
                ),
                width=12,
            ),
        ),
    )


def cost_section() -> Section:
    """Spend, cost per call and per request, and the calls without a price, per provider/model/arm."""
    by = f"{GENAI.provider}, {GENAI.model}, {ARM}, {q.CURRENCY}"
    legend = q.legend(GENAI.provider, GENAI.model, ARM, q.CURRENCY)
    spend = f"sum by ({by}) ({q.rate(GENAI.selector(q.COST_COUNTER))})"
    call_count = GENAI.selector(f"{q.DURATION_HISTOGRAM}_count")
    calls = f"sum by ({GENAI.provider}, {GENAI.model}, {ARM}) ({q.rate(call_count)})"
    arm_spend = f"sum by ({ARM}, {q.CURRENCY}) ({q.rate(GENAI.selector(q.COST_COUNTER))})"
    requests = (f"sum by ({ARM}) "
                f"({q.rate(q.ROLLUP.selector(q.REQUEST_COUNTER, *q.REQUEST_SPANS))})")
    return Section(
        "Cost by provider, model and experiment arm",
        (
            Panel(
                "Spend/hour by provider/model/arm",
                "How much money per hour goes to each provider, model and arm (llm.client.cost, in its "
                "currency)?",
                ((f"{spend} * 3600", legend),),
                width=12,
            ),
            Panel(
                "Cost per LLM call by provider/model/arm",
                "What does one call cost, per provider, model and arm?",
                ((f"{spend} / on ({GENAI.provider}, {GENAI.model}, {ARM}) group_left {calls}", legend),),
                width=12,
            ),
            Panel(
                "Cost per request by arm",
                "Which arm is cheaper per request (cost of its LLM calls over its requests)? `otel-llm ab` "
                "says whether the difference is significant.",
                ((f"{arm_spend} / on ({ARM}) group_left {requests}", q.legend(ARM, q.CURRENCY)),),
                width=12,
            ),
            Panel(
                "LLM calls without a price/sec by reason",
                "Which calls could not be priced (unknown model, no token counts, catalogue unavailable)?",
                (
                    (
                        f"sum by ({GENAI.provider}, {GENAI.model}, {q.UNPRICED_REASON}) "
                        f"({q.rate(GENAI.selector(q.UNPRICED_COUNTER))})",
                        q.legend(GENAI.provider, GENAI.model, q.UNPRICED_REASON),
                    ),
                ),
                width=12,
            ),
        ),
    )


def stat(
    title: str, question: str, expr: str, *, unit: str = "short", threshold: float | None = None
) -> Panel:
    """A single-number panel of the Eco2 agent's top line (a quarter of the width)."""
    return Panel(
        title, question, ((expr, ""),), unit=unit, kind="stat", width=6, height=4, threshold=threshold
    )


def streaming_section() -> Section:
    """The Eco2 agent's section 6 panels and layout, filtered by the dashboard's variables."""
    tokens, buckets = STREAM.selector("chat_stream_tokens_total"), "chat_stream_duration_seconds_bucket"
    return Section(
        "Chat worker token streaming (Eco2 agent, section 6)",
        (
            stat(
                "Active streams",
                "How many token streams are being produced right now (chat_stream_active)?",
                f"sum({STREAM.selector('chat_stream_active')})",
            ),
            stat("Tokens/sec", "How many tokens per second do the workers stream?", f"sum({q.rate(tokens)})"),
            stat(
                "P95 token publish latency (XADD)",
                "Is publishing a token to Redis slow? SLO: p50 5 ms, p95 25 ms, p99 50 ms "
                "(alert HighTokenLatency > 50 ms).",
                q.quantile(0.95, "", STREAM.selector("chat_stream_token_latency_seconds_bucket")),
                unit="s",
                threshold=0.05,
            ),
            stat(
                "P95 stream duration",
                "How long does a whole answer stream take? Alert StreamDurationTooLong at p95 > 30 s.",
                q.quantile(0.95, "", STREAM.selector(buckets)),
                unit="s",
                threshold=30,
            ),
            Panel(
                "Token emission rate by node",
                "Which LangGraph node streams how many tokens per second?",
                ((f"sum by (node) ({q.rate(tokens)})", "{{node}}"),),
                width=12,
            ),
            Panel(
                "Stream duration distribution",
                "How are stream durations spread over the Eco2 buckets (0.5 s .. 60 s), over 5 minutes?",
                ((f"sum by (le) (increase({STREAM.selector(buckets)}[{q.WINDOW}]))", "{{le}}"),),
                kind="bargauge",
                width=12,
            ),
            Panel(
                "Median tokens per stream",
                "How long are answers, in tokens, per node?",
                (
                    (
                        f"histogram_quantile(0.5, sum by (le, node) "
                        f"({q.rate(STREAM.selector('chat_stream_token_count_bucket'))}))",
                        "{{node}}",
                    ),
                ),
                width=12,
                height=7,
            ),
            Panel(
                "Recovery attempts",
                "How often do clients re-read a stream (catch_up, snapshot), and do they succeed?",
                (
                    (
                        f"sum by (type, status) ({q.rate(STREAM.selector('chat_stream_recovery_total'))})",
                        "{{type}} {{status}}",
                    ),
                ),
                width=12,
                height=7,
            ),
        ),
    )


def experiment_section() -> Section:
    requests = STREAM.selector("chat_stream_requests_total")
    by_arm = f"sum by ({ARM})"
    ttft = GENAI.selector("gen_ai_client_operation_time_to_first_chunk_seconds_bucket")
    return Section(
        "Experiment arms (llm.experiment.arm)",
        (
            Panel(
                "Streams/sec by arm",
                "How is traffic split between the arms?",
                ((f"{by_arm} ({q.rate(requests)})", ARM_LEGEND),),
                unit="reqps",
            ),
            Panel(
                "Stream error ratio by arm",
                "Does one arm fail more often (0 where none failed)?",
                (
                    (
                        q.ratio_or_zero(
                            ARM, STREAM.selector("chat_stream_requests_total", 'status="error"'), requests
                        ),
                        ARM_LEGEND,
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Fallbacks/sec by arm",
                "How many requests did not use their arm's provider and model (0 for an arm without any)?",
                (
                    (
                        f"{by_arm} ({q.rate(GENAI.selector('llm_experiment_fallbacks_total'))}) "
                        f"or 0 * {by_arm} ({q.rate(requests)})",
                        ARM_LEGEND,
                    ),
                ),
            ),
            Panel(
                "P95 stream duration by arm",
                "Which arm answers faster, whole stream?",
                (
                    (
                        q.quantile(0.95, ARM, STREAM.selector("chat_stream_duration_seconds_bucket")),
                        ARM_LEGEND,
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Time to first token by arm (p50, p95)",
                "Which arm starts answering sooner?",
                tuple((q.quantile(p, ARM, ttft), f"p{round(p * 100)} {ARM_LEGEND}") for p in (0.5, 0.95)),
                unit="s",
            ),
            Panel(
                "Tokens per stream by arm",
                "Does one arm answer at greater length?",
                (
                    (
                        f"{by_arm} ({q.rate(STREAM.selector('chat_stream_token_count_sum'))}) / "
                        f"{by_arm} ({q.rate(STREAM.selector('chat_stream_token_count_count'))})",
                        ARM_LEGEND,
                    ),
                ),
            ),
            Panel(
                "Mean token interval by arm",
                "Which arm streams tokens faster once started?",
                (
                    (
                        f"{by_arm} ({q.rate(STREAM.selector('chat_stream_token_interval_seconds_sum'))}) / "
                        f"{by_arm} ({q.rate(STREAM.selector('chat_stream_token_interval_seconds_count'))})",
                        ARM_LEGEND,
                    ),
                ),
                unit="s",
                width=12,
            ),
            Panel(
                "P95 time per output chunk by provider/model",
                "Which provider and model stream chunks slowest?",
                (
                    (
                        q.quantile(
                            0.95,
                            f"{GENAI.provider}, {GENAI.model}",
                            GENAI.selector("gen_ai_client_operation_time_per_output_chunk_seconds_bucket"),
                        ),
                        q.legend(GENAI.provider, GENAI.model),
                    ),
                ),
                unit="s",
                width=12,
            ),
        ),
    )


def alert_panel(alert: AlertView) -> Panel:
    targets = [(alert.value, "")]
    if alert.limit is not None:
        targets.append((alert.limit, "limit"))
    return Panel(
        f"Alert {alert.name}",
        f"What the alert rule {alert.name} compares ({alert.summary}); all data, whatever the variables.",
        tuple(targets),
        unit=alert.unit,
        threshold=alert.threshold,
    )


def alerts_section(rules: Path) -> Section:
    return Section(f"Alert rules ({rules.name})", tuple(alert_panel(alert) for alert in q.alert_views(rules)))


def sections(rules: Iterable[Path]) -> list[Section]:
    """Every section of the dashboard, top to bottom; one alert section per rule file of ``rules``."""
    return [
        *(requests_section(requests) for requests in q.REQUESTS),
        tokens_section(),
        cost_section(),
        streaming_section(),
        experiment_section(),
        *(alerts_section(path) for path in rules),
    ]
