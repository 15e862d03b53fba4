"""``otel-llm ab``: which experiment arm is faster, and is the difference real?

Reads the experiment's traces from Jaeger (requests, error rate, p50/p95/p99 trace duration, time to first
token, tokens per request; TTFT from Prometheus for an arm whose spans lack it), per arm
(``llm.experiment.arm``); compares every arm with the fastest by a Mann-Whitney U test on trace durations
(Holm-adjusted with three or more arms) and states the difference of the medians with its interval; prints a
table (or ``--json``) and optionally draws a PNG (``--chart``). Needs the ``ab`` extra (SciPy, statsmodels,
matplotlib); without it the command exits 2 naming the extra, before any query.

Exit codes: 0 report printed (and charted); 2 with one line on stderr: a URL that is not http(s), a query API
unreachable, no trace of the experiment found, the ``ab`` extra missing (checked before any query), or
the chart file not writable (after the report is printed).
"""

from __future__ import annotations

import argparse
import json
import sys

from otel_llm.cli.endpoints import (
    DEFAULT_JAEGER_URL,
    DEFAULT_PROMETHEUS_URL,
    JAEGER_URL_ENV,
    PROMETHEUS_URL_ENV,
    jaeger_url,
    prometheus_url,
    url_help,
)
from otel_llm.cli.search import (
    DEFAULT_LOOKBACK,
    SearchError,
    _duration_arg,
    _positive_int,
    parse_duration,
    url_problem,
)

DEFAULT_LIMIT = 2000
EXIT_ERROR = 2


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must be a number between 0 and 1 (exclusive), got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ab",
        help="per-arm A/B report of an experiment, with a significance test",
        description="Per-arm report of an experiment from Jaeger and Prometheus: requests, error rate, "
        "p50/p95/p99 latency, time to first token, tokens per request, and whether the slower arm is "
        "significantly slower (Mann-Whitney U on trace durations).",
    )
    parser.add_argument(
        "--jaeger-url",
        default=None,
        help=url_help("Jaeger query", JAEGER_URL_ENV, DEFAULT_JAEGER_URL),
    )
    parser.add_argument(
        "--prometheus-url",
        default=None,
        help=url_help("Prometheus", PROMETHEUS_URL_ENV, DEFAULT_PROMETHEUS_URL),
    )
    parser.add_argument(
        "--experiment",
        default=None,
        help="experiment id (llm.experiment.id); default: every trace that carries an arm",
    )
    parser.add_argument(
        "--service",
        action="append",
        help="Jaeger service to read traces of (repeatable; default: every service)",
    )
    parser.add_argument(
        "--lookback",
        type=_duration_arg,
        default=DEFAULT_LOOKBACK,
        metavar="DURATION",
        help=f"how far back to look (default {DEFAULT_LOOKBACK})",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIMIT,
        help=f"traces asked of Jaeger per service (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--alpha", type=_alpha, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--chart", metavar="PNG", default=None, help="also draw the report into this PNG file"
    )
    parser.set_defaults(handler=run, extra="ab")


def _fail(message: str) -> int:
    print(f"otel-llm ab: {message}", file=sys.stderr)
    return EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    # The ab extra's modules first, so a missing one is named (otel_llm.cli.main) before any query.
    from otel_llm.ab.report import TTFT_PERCENTILES, build_report, render_table

    if args.chart:
        import matplotlib  # noqa: F401
    from otel_llm.ab.sources import PrometheusSource, SourceError, jaeger_samples
    from otel_llm.cli.search import JaegerClient

    jaeger_base, prometheus_base = jaeger_url(args.jaeger_url), prometheus_url(args.prometheus_url)
    lookback_us = parse_duration(args.lookback)
    problem = url_problem(jaeger_base, "--jaeger-url", JAEGER_URL_ENV) or url_problem(
        prometheus_base, "--prometheus-url", PROMETHEUS_URL_ENV
    )
    if problem:
        return _fail(problem)
    jaeger, prometheus = JaegerClient(jaeger_base), PrometheusSource(prometheus_base)
    try:
        samples = jaeger_samples(jaeger, args.service, lookback_us, args.limit, args.experiment)
        if not samples:
            wanted = f"experiment {args.experiment}" if args.experiment else "an arm"
            return _fail(f"no trace with {wanted} in Jaeger at {jaeger_base} in the last {args.lookback}")
        # Prometheus only for arms whose spans carry no time to first token (otel_llm.ab.sources).
        arms = sorted({s.arm for s in samples} - {s.arm for s in samples if s.ttft_s})
        window = f"{max(lookback_us // 1_000_000, 1)}s"
        ttft = (
            {
                q: prometheus.time_to_first_token(arms, q / 100, window, args.experiment)
                for q in TTFT_PERCENTILES
            }
            if arms
            else {}
        )
    except (SearchError, SourceError) as exc:
        return _fail(str(exc))
    report = build_report(samples, ttft, args.alpha, args.experiment)
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_table(report))
    if args.chart:
        from otel_llm.ab.chart import write_chart

        try:
            write_chart(report, args.chart)
        except OSError as exc:
            return _fail(f"cannot write the chart {args.chart} ({exc.strerror or exc})")
    return 0
