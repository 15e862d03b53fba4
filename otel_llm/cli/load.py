"""``otel-llm load``: the Eco2 agent's load scenario against a chat API, then SLO verdicts from Prometheus.

Runs ``otel_llm.load.scenario`` (Locust, headless) against ``--url`` (or, with ``--reference-app``, against
the reference app it starts on the recorded stack for the run, ``otel_llm.cli.demo_stack.reference_app``) with
a progress line every two seconds (elapsed, users, requests/s, requests, errors) on stderr; waits until
Prometheus has counted every accepted job's LangGraph run and its series stop changing (at most ``--settle``),
then judges the Eco2 agent's SLOs (``otel_llm/load/slos.yaml``) per experiment arm on what the run added to
Prometheus (``otel_llm.load.slo``) and prints a table, or ``--json``, and optionally a PNG (``--chart``).
Needs the ``load`` extra (Locust, PyYAML, matplotlib); without it the command exits 2 naming the extra, before
any request.

Exit codes: 0 every SLO held; 1 an SLO failed (or none could be judged); 2 with one line on stderr: a bad
``--url``/``--stages``, Prometheus unreachable, the stack or reference app not starting, the ``load`` extra
missing, the chart not writable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from otel_llm.cli.endpoints import DEFAULT_PROMETHEUS_URL, PROMETHEUS_URL_ENV, prometheus_url, url_help
from otel_llm.cli.search import _duration_arg, parse_duration, url_problem

DEFAULT_URL = "http://127.0.0.1:8080"  # the reference API's default port (python -m otel_llm.demo.api)
DEFAULT_SETTLE = "60s"
DEFAULT_STABLE = "20s"  # longer than the stack's default scrape and span-metrics flush intervals (15 s)
POLL_S = 1.0
EXIT_FAILED, EXIT_ERROR = 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    from otel_llm.load.profile import CHAT_PATH, DEFAULT_STAGES, ECO2_STAGES

    parser = subparsers.add_parser(
        "load",
        help="ramp users through a chat API (an intent mix, job checks) and judge its SLOs per arm",
        description="Drive a chat API like the Eco2 agent's k6 test (stages of users, the intent mix, "
        "session ids, the job-id check) with Locust, then print each SLO's P50/P95/P99 per experiment arm "
        "against its target, counted from Prometheus, and for a failing one the slowest LangGraph node and "
        "its provider/model.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the chat API's base URL (default {DEFAULT_URL})")
    parser.add_argument(
        "--reference-app",
        action="store_true",
        help="instead of --url: start the reference app on the stack `otel-llm stack up` recorded "
        "(started if needed, as `otel-llm demo --stack` does) with this environment (experiment and "
        "fault-injection variables apply), load it, stop it",
    )
    parser.add_argument("--path", default=CHAT_PATH, help=f"the chat endpoint (default {CHAT_PATH})")
    parser.add_argument(
        "--stages",
        default=DEFAULT_STAGES,
        help=f"DURATION:USERS,... ramped linearly like k6 stages (default {DEFAULT_STAGES}; the Eco2 agent's "
        f"7-minute profile: {ECO2_STAGES})",
    )
    parser.add_argument(
        "--prometheus-url",
        default=None,
        help=url_help("Prometheus", PROMETHEUS_URL_ENV, DEFAULT_PROMETHEUS_URL),
    )
    parser.add_argument(
        "--settle",
        type=_duration_arg,
        default=DEFAULT_SETTLE,
        metavar="DURATION",
        help=f"at most this long after the load for Prometheus to catch up (default {DEFAULT_SETTLE})",
    )
    parser.add_argument(
        "--stable",
        type=_duration_arg,
        default=DEFAULT_STABLE,
        metavar="DURATION",
        help="Prometheus has caught up when its series stayed the same this long (default "
        f"{DEFAULT_STABLE}; at least the scrape and span-metrics flush intervals)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the intent mix")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--chart", metavar="PNG", default=None, help="also draw the verdicts into this PNG")
    parser.set_defaults(handler=run, extra="load")


def _fail(message: str) -> int:
    print(f"otel-llm load: {message}", file=sys.stderr)
    return EXIT_ERROR


def _progress(progress) -> None:
    print(
        f"  {progress.elapsed_s:5.0f} s  users {progress.users:3d}  {progress.requests_per_s:6.1f} req/s  "
        f"requests {progress.requests:6d}  errors {progress.errors}",
        file=sys.stderr,
        flush=True,
    )


def settle(take, before, accepted: int, settle_s: float, stable_s: float):
    """The snapshot once Prometheus counted ``accepted`` runs and stayed unchanged ``stable_s``, else what it
    holds after ``settle_s``; and whether it settled."""
    from otel_llm.load.slo import difference, runs_counted

    deadline = time.monotonic() + settle_s
    last, since = take(), time.monotonic()
    while True:
        caught_up = runs_counted(difference(last, before)) >= accepted
        if caught_up and time.monotonic() - since >= stable_s:
            return last, True
        if time.monotonic() >= deadline:
            return last, False
        time.sleep(POLL_S)
        current = take()
        if current != last:
            last, since = current, time.monotonic()


def run(args: argparse.Namespace) -> int:
    # The load extra's modules first, so a missing one is named (otel_llm.cli.main) before any request.
    import yaml  # noqa: F401

    from otel_llm.load import scenario  # noqa: F401

    if args.chart:
        import matplotlib  # noqa: F401
    from otel_llm.load.profile import parse_stages

    prometheus_base = prometheus_url(args.prometheus_url)
    problem = url_problem(prometheus_base, "--prometheus-url", PROMETHEUS_URL_ENV)
    if not args.url.startswith(("http://", "https://")):
        problem = f"--url {args.url!r} must start with http:// or https://"
    if problem:
        return _fail(problem)
    try:
        parse_stages(args.stages)
    except ValueError as exc:
        return _fail(str(exc))
    if not args.reference_app:
        return _load_and_judge(args, args.url, prometheus_base)
    from otel_llm.cli.demo_stack import DemoStackError, recorded_stack, reference_app
    from otel_llm.stack.run import StackError

    try:
        stack = recorded_stack(lambda line: print(line, file=sys.stderr, flush=True))
        log_path = stack.state_dir / "logs" / "load-app.log"
        print(f"starting the reference app (logs: {log_path})", file=sys.stderr, flush=True)
        with open(log_path, "a") as log, reference_app(stack, log, uuid.uuid4().hex) as api_url:
            return _load_and_judge(args, api_url, args.prometheus_url or stack.prometheus_url)
    except (StackError, DemoStackError, OSError) as exc:
        return _fail(str(exc))


def _load_and_judge(args: argparse.Namespace, url: str, prometheus_base: str) -> int:
    """Snapshot, load, settle, judge, print; the exit code."""
    from otel_llm.ab.sources import PrometheusSource, SourceError
    from otel_llm.load import scenario
    from otel_llm.load.profile import parse_stages
    from otel_llm.load.report import LoadReport, render_table, write_chart
    from otel_llm.load.slo import difference, load_slos, take_snapshot, verdicts

    slos = load_slos()
    prometheus = PrometheusSource(prometheus_base)

    def take():
        return take_snapshot(prometheus.query, slos)

    try:
        before = take()
        started = time.monotonic()
        tally, environment = scenario.run(
            url, parse_stages(args.stages), _progress, path=args.path, seed=args.seed
        )
        duration_s = time.monotonic() - started
        accepted = sum(tally.accepted.values())
        print(f"load done; waiting for Prometheus to count {accepted} jobs", file=sys.stderr, flush=True)
        after, settled = settle(
            take, before, accepted, parse_duration(args.settle) / 1e6, parse_duration(args.stable) / 1e6
        )
    except SourceError as exc:
        return _fail(str(exc))
    total = environment.stats.total
    report = LoadReport(
        url,
        args.stages,
        duration_s,
        total.num_requests,
        total.num_failures,
        dict(tally.accepted),
        settled,
        verdicts(slos, difference(after, before)),
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_table(report))
    if args.chart:
        try:
            write_chart(report, args.chart)
        except OSError as exc:
            return _fail(f"cannot write the chart {args.chart} ({exc.strerror or exc})")
    return 0 if report.verdicts and report.ok else EXIT_FAILED
