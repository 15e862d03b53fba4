"""``otel-llm search``: find traces in Jaeger by service, provider, model, experiment arm, intent and
duration.

Asks Jaeger's query API (``GET /api/services``, ``GET /api/traces``: the HTTP API the Jaeger v2 query
extension serves) and prints a table or JSON. Without ``--service`` every service Jaeger knows is asked, with
the filters sent as span tags (``gen_ai.provider.name``, ``gen_ai.request.model``, ``llm.experiment.arm``,
``langsmith.metadata.intent``) and, when there are filters, once more without tags for its recent traces (up
to ``SCAN_LIMIT``, so traces whose provider or model are only in a root's roll-up or in deprecated attributes
are found too); the traces are merged by id. With ``--service`` only that service is asked for its recent
traces (up to ``SCAN_LIMIT``), because Jaeger's badger store matches tags only on spans of the queried service
while the LLM spans may belong to another service of the trace. Either way every filter is checked again on
each whole trace with the semconv rules (storages differ in how they match tags: badger on any spans of one
service, the memory store on one span), so provider aliases, deprecated attributes, the ``intent:<x>`` run tag
and the roll-up on roots count too.

Exit codes: 0 traces printed; 2 Jaeger unreachable, not a Jaeger, or no trace matched (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_llm import semconv
from otel_llm.cli.endpoints import DEFAULT_JAEGER_URL, JAEGER_URL_ENV, jaeger_url, url_help
from otel_llm.traces import Trace, from_jaeger, summaries_json

DEFAULT_LOOKBACK = "1h"  # also otel-llm ab's (and trace's): one look-back for every command reading Jaeger
DEFAULT_LIMIT = 20
# Traces asked of Jaeger per service when a filter cannot be sent to it and is only checked here.
SCAN_LIMIT = 200
REQUEST_TIMEOUT_SECONDS = 10.0
EXIT_ERROR = 2
URL_SCHEMES = ("http://", "https://")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h|d)\s*$")
_MICROSECONDS_PER_UNIT = {
    "us": 1,
    "µs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}


class SearchError(Exception):
    """A failure the user can act on; its message is the one line printed."""


def parse_duration(text: str) -> int:
    """Microseconds in a duration like ``250ms``, ``1.5s``, ``15m``, ``2h``, ``1d``; ValueError otherwise."""
    match = _DURATION.match(text or "")
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (us, ms, s, m, h, d), e.g. 500ms or 1h"
        )
    return int(float(match.group(1)) * _MICROSECONDS_PER_UNIT[match.group(2)])


def _duration_arg(text: str) -> str:
    """The duration text as typed, once it parses (kept as text so messages repeat what the user wrote)."""
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def url_problem(url: str, option: str, variable: str) -> str | None:
    """None for an http(s) URL, else one line naming the option and the variable it came from."""
    if url.startswith(URL_SCHEMES):
        return None
    return f"{option} / ${variable} {url!r} must start with http:// or https://"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


@dataclass(frozen=True)
class TraceFilter:
    """What a trace must satisfy; None means "any". ``min_duration_us`` applies to the whole trace."""

    provider: str | None = None
    model: str | None = None
    arm: str | None = None
    intent: str | None = None
    min_duration_us: int = 0

    def __post_init__(self) -> None:
        if self.min_duration_us < 0:
            raise ValueError("min_duration_us must be >= 0")
        if self.provider is not None:
            # Users type "bedrock" or "amazon_bedrock"; spans carry the canonical name.
            object.__setattr__(self, "provider", semconv.normalize_provider(self.provider))

    def jaeger_tags(self) -> dict[str, str]:
        """The filters as Jaeger span tags: exact values on spans the reference app and our plugins write."""
        pairs = {
            semconv.GEN_AI_PROVIDER_NAME: self.provider,
            semconv.GEN_AI_REQUEST_MODEL: self.model,
            semconv.EXPERIMENT_ARM: self.arm,
            semconv.LANGSMITH_INTENT: self.intent,
        }
        return {key: value for key, value in pairs.items() if value is not None}

    def matches(self, trace: Trace) -> bool:
        if trace.duration_us < self.min_duration_us:
            return False
        if self.provider is not None and self.provider not in trace.providers:
            return False
        if self.model is not None and self.model not in trace.models:
            return False
        if self.arm is not None and self.arm not in trace.attribute_values(semconv.EXPERIMENT_ARM):
            return False
        return self.intent is None or self.intent in _intents(trace)


def _intents(trace: Trace) -> set[str]:
    """Intents a trace carries: LangSmith metadata ``intent``, or ``intent:<x>`` among its run tags."""
    intents = trace.attribute_values(semconv.LANGSMITH_INTENT)
    for tags in trace.attribute_values(semconv.LANGSMITH_SPAN_TAGS):
        intents.update(
            tag.strip()[len("intent:") :] for tag in tags.split(",") if tag.strip().startswith("intent:")
        )
    return intents


Fetch = Callable[[str], Any]


def http_get_json(url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
    """GET a JSON document; SearchError (one line) when the server is unreachable or does not answer JSON."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        # Jaeger answers a query it refuses with an error status and {"errors": [{"msg": ...}]}: pass that on.
        refusal = _json_or_none(exc.read())
        if isinstance(refusal, Mapping) and refusal.get("errors"):
            return refusal
        raise SearchError(f"{url} answered HTTP {exc.code}: is this a Jaeger query endpoint?") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SearchError(
            f"cannot reach Jaeger at {url} ({reason}); start it with `otel-llm stack up` "
            f"or point --jaeger-url / {JAEGER_URL_ENV} at it"
        ) from None
    payload = _json_or_none(body)
    if payload is None:
        raise SearchError(f"{url} did not answer JSON: is this a Jaeger query endpoint?")
    return payload


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class JaegerClient:
    """The two calls of Jaeger's query HTTP API the search needs."""

    def __init__(self, base_url: str, fetch: Fetch = http_get_json) -> None:
        if not base_url.startswith(URL_SCHEMES):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._fetch = fetch

    def _data(self, path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        url = f"{self.base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        payload = self._fetch(url)
        errors = payload.get("errors") if isinstance(payload, Mapping) else None
        if isinstance(errors, list) and errors:
            reason = errors[0].get("msg", errors[0]) if isinstance(errors[0], Mapping) else errors[0]
            raise SearchError(f"Jaeger refused the query: {reason}")
        if not isinstance(payload, Mapping) or not isinstance(payload.get("data", "absent") or [], list):
            raise SearchError(f'{url} did not answer like Jaeger (no "data" list)')
        return payload.get("data") or []

    def services(self) -> list[str]:
        return sorted(str(name) for name in self._data("/api/services"))

    def find_traces(
        self,
        service: str,
        start_us: int,
        end_us: int,
        limit: int,
        tags: Mapping[str, str],
        min_duration_us: int,
    ) -> list[Any]:
        params = {"service": service, "start": str(start_us), "end": str(end_us), "limit": str(limit)}
        if tags:
            params["tags"] = json.dumps(dict(tags))
        if min_duration_us:
            params["minDuration"] = f"{min_duration_us}us"
        return self._data("/api/traces", params)

    def trace(self, trace_id: str) -> list[Any]:
        """One trace by id (Jaeger's ``data`` list: empty or one trace); SearchError when Jaeger has none."""
        try:
            return self._data(f"/api/traces/{urllib.parse.quote(trace_id)}")
        except SearchError as exc:
            if "not found" in str(exc).lower():  # Jaeger answers an unknown id with 404 "trace not found"
                return []
            raise


def client_for(flag: str | None) -> JaegerClient:
    """A client of the Jaeger that ``--jaeger-url``, its variable or the recorded stack names
    (``otel_llm.cli.endpoints``); SearchError naming them for a URL that is not http(s)."""
    url = jaeger_url(flag)
    problem = url_problem(url, "--jaeger-url", JAEGER_URL_ENV)
    if problem:
        raise SearchError(problem)
    return JaegerClient(url)


def search(
    client: JaegerClient,
    trace_filter: TraceFilter,
    services: Sequence[str] | None,
    lookback_us: int,
    limit: int,
    now_us: int | None = None,
) -> list[Trace]:
    """Matching traces, newest first, at most ``limit``; SearchError when Jaeger has no services at all."""
    end_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    tags = trace_filter.jaeger_tags()
    if services:
        # Jaeger's badger store matches tags only on spans of the queried service, and the LLM spans may be in
        # another service of the trace: ask for the service's recent traces and filter them all here.
        services, queries = list(services), [{}]
    else:
        services = client.services()
        if not services:
            raise SearchError(f"Jaeger at {client.base_url} has no traces from any service yet")
        # With tags Jaeger's indexes find old matches too; a scan of the recent traces without tags also finds
        # those whose provider or model sit only in a root's roll-up or in deprecated attributes
        # (gen_ai.system), and intents that are only an intent:<x> run tag, which no exact tag matches.
        queries = [tags, {}] if tags else [{}]
    raw_traces: dict[str, Any] = {}
    for service in services:
        for query_tags in queries:
            # Jaeger's memory store applies minDuration and tags to one span: send minDuration only alone (any
            # span that long makes the trace at least that long), and check the trace's duration here.
            server_min_duration = 0 if query_tags else trace_filter.min_duration_us
            checked_here_only = tags != query_tags or (query_tags and trace_filter.min_duration_us)
            fetch_limit = max(limit, SCAN_LIMIT) if checked_here_only else limit
            for raw in client.find_traces(
                service, end_us - lookback_us, end_us, fetch_limit, query_tags, server_min_duration
            ):
                if isinstance(raw, Mapping) and raw.get("traceID"):
                    raw_traces[str(raw["traceID"])] = raw
    traces = [
        trace for trace in from_jaeger({"data": list(raw_traces.values())}) if trace_filter.matches(trace)
    ]
    traces.sort(key=lambda trace: trace.start_us, reverse=True)
    return traces[:limit]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find traces in Jaeger by provider, model, experiment arm, intent or duration",
        description="Find traces in Jaeger by service, provider, model, experiment arm, intent and duration.",
    )
    parser.add_argument(
        "--jaeger-url",
        default=None,
        help=url_help("Jaeger query", JAEGER_URL_ENV, DEFAULT_JAEGER_URL),
    )
    parser.add_argument(
        "--service",
        action="append",
        help="only traces with spans of this service (repeatable; default: every service Jaeger knows)",
    )
    parser.add_argument(
        "--provider", help="an LLM provider, e.g. openai, aws.bedrock (aliases like bedrock work)"
    )
    parser.add_argument("--model", help="a requested model id, e.g. gpt-4o-mini")
    parser.add_argument("--arm", help=f"an experiment arm ({semconv.EXPERIMENT_ARM})")
    parser.add_argument(
        "--intent", help="the intent the graph classified (LangSmith metadata or intent:<x> tag)"
    )
    parser.add_argument(
        "--min-duration",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="only traces lasting at least this long, e.g. 500ms, 2s",
    )
    parser.add_argument(
        "--lookback",
        type=_duration_arg,
        default=DEFAULT_LOOKBACK,
        metavar="DURATION",
        help=f"how far back to look (default {DEFAULT_LOOKBACK}), e.g. 15m, 2h, 1d",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIMIT,
        help=f"at most this many traces, newest first (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--json", action="store_true", help="print the traces as a JSON list")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from otel_llm.cli.render import render_trace_table
    from otel_llm.cli.trace import command as trace_command

    try:
        client = client_for(args.jaeger_url)
        min_duration_us = parse_duration(args.min_duration) if args.min_duration else 0
        trace_filter = TraceFilter(args.provider, args.model, args.arm, args.intent, min_duration_us)
        traces = search(client, trace_filter, args.service, parse_duration(args.lookback), args.limit)
    except (SearchError, ValueError) as exc:
        print(f"otel-llm search: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not traces:
        print(
            f"otel-llm search: no trace matched {_describe(args)} in the last {args.lookback} "
            f"at {client.base_url}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    print(summaries_json(traces) if args.json else "\n".join(render_trace_table(traces)))
    if not args.json:
        print(f"draw one as a tree: {trace_command(traces[0].trace_id)}", file=sys.stderr)
    return 0


def _describe(args: argparse.Namespace) -> str:
    """The filters as the user typed them, for the "nothing matched" line."""
    filters = [f"--service {service}" for service in args.service or ()]
    filters += [
        f"--{name.replace('_', '-')} {value}"
        for name in ("provider", "model", "arm", "intent", "min_duration")
        if (value := getattr(args, name)) is not None
    ]
    return " ".join(filters) if filters else "(no filters)"
