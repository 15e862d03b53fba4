"""otel-llm search without Jaeger: argument and error paths against real local HTTP servers; the filter."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from otel_llm import semconv
from otel_llm.cli import search as search_cli
from otel_llm.cli.search import (
    DEFAULT_LIMIT,
    EXIT_ERROR,
    JAEGER_URL_ENV,
    SCAN_LIMIT,
    TraceFilter,
    parse_duration,
)
from otel_llm.traces import Span, Trace

BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


class Server:
    """A local HTTP server answering GETs with (status, content type, body) per path, canned or computed by a
    function of the query parameters; records URLs."""

    def __init__(self, responses: dict[str, Any]) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                url = urllib.parse.urlparse(self.path)
                answer = responses.get(url.path, (404, "text/plain", b"404 page not found"))
                if callable(answer):
                    answer = answer(urllib.parse.parse_qs(url.query))
                status, content_type, body = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[Server] = []

    def start(responses: dict[str, tuple[int, str, bytes]]) -> Server:
        servers.append(Server(responses))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def jaeger_json(data: object) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps({"data": data, "total": 0, "errors": None}).encode()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def main(argv: list[str]) -> int:
    """The search subcommand alone (the other subcommands are not under test here)."""
    parser = argparse.ArgumentParser(prog="otel-llm")
    search_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def run_search(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["search", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_closed_port_is_one_line_naming_the_url_and_the_fix(capsys):
    """Nothing listening: exit 2 and one stderr line naming the URL and `otel-llm stack up`."""
    url = closed_port_url()
    code, out, err = run_search(capsys, "--jaeger-url", url)
    assert code == EXIT_ERROR and out == ""
    assert err.count("\n") == 1
    assert "cannot reach Jaeger at " + url in err and "otel-llm stack up" in err


def test_jaeger_url_comes_from_the_environment(capsys, monkeypatch):
    """Without --jaeger-url the env var decides where to look."""
    url = closed_port_url()
    monkeypatch.setenv(JAEGER_URL_ENV, url)
    code, _, err = run_search(capsys)
    assert code == EXIT_ERROR and url in err


def test_a_server_that_is_not_jaeger_gives_one_line(capsys, serve):
    """An HTML page or a 404 is reported as "not a Jaeger query endpoint", not as a traceback."""
    html = serve({"/api/services": (200, "text/html", b"<html>hello</html>")})
    code, _, err = run_search(capsys, "--jaeger-url", html.url)
    assert code == EXIT_ERROR and "did not answer JSON" in err and err.count("\n") == 1
    missing = serve({})
    code, _, err = run_search(capsys, "--jaeger-url", missing.url)
    assert code == EXIT_ERROR and "HTTP 404" in err and err.count("\n") == 1
    for body in (b'{"data": "nope"}', b'{"status": "ok"}', b"[1, 2]"):
        other_json = serve({"/api/services": (200, "application/json", body)})
        code, _, err = run_search(capsys, "--jaeger-url", other_json.url)
        assert code == EXIT_ERROR and "did not answer like Jaeger" in err


def test_a_query_jaeger_refuses_gives_its_message(capsys, serve):
    """Jaeger's own error (HTTP 400 with an errors list) is passed on in one line."""
    refusal = {"data": None, "errors": [{"code": 400, "msg": "malformed parameter minDuration"}]}
    server = serve({"/api/traces": (400, "application/json", json.dumps(refusal).encode())})
    code, _, err = run_search(capsys, "--jaeger-url", server.url, "--service", "chat-api")
    assert code == EXIT_ERROR
    assert err == "otel-llm search: Jaeger refused the query: malformed parameter minDuration\n"


def test_no_services_and_no_matches_are_errors(capsys, serve):
    """An empty Jaeger and a search that finds nothing both exit 2 with one line saying so."""
    empty = serve({"/api/services": jaeger_json([])})
    code, _, err = run_search(capsys, "--jaeger-url", empty.url)
    assert code == EXIT_ERROR and "no traces from any service" in err
    nothing = serve({"/api/services": jaeger_json(["chat-api"]), "/api/traces": jaeger_json([])})
    code, out, err = run_search(
        capsys, "--jaeger-url", nothing.url, "--provider", "bedrock", "--lookback", "15m"
    )
    assert code == EXIT_ERROR and out == ""
    assert err.strip().endswith(f"no trace matched --provider bedrock in the last 15m at {nothing.url}")


def test_query_sends_filters_as_tags_and_window_from_lookback(capsys, serve):
    """Each service is asked with the canonical provider tag, the model, limit and a lookback window."""
    server = serve(
        {"/api/services": jaeger_json(["chat-api", "chat-worker"]), "/api/traces": jaeger_json([])}
    )
    run_search(
        capsys,
        "--jaeger-url",
        server.url,
        "--provider",
        "amazon_bedrock",
        "--model",
        "m",
        "--arm",
        "b",
        "--intent",
        "general",
        "--lookback",
        "2h",
        "--limit",
        "7",
    )
    queries = [urllib.parse.parse_qs(urllib.parse.urlparse(path).query) for path in server.requests[1:]]
    # Each service twice: with the filters as tags, and a scan of its recent traces without tags.
    assert [(query["service"], "tags" in query) for query in queries] == [
        (["chat-api"], True),
        (["chat-api"], False),
        (["chat-worker"], True),
        (["chat-worker"], False),
    ]
    query, scan = queries[:2]
    assert json.loads(query["tags"][0]) == {
        semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.EXPERIMENT_ARM: "b",
        semconv.LANGSMITH_INTENT: "general",
    }
    assert query["limit"] == ["7"] and "minDuration" not in query
    assert scan["limit"] == [str(SCAN_LIMIT)]
    assert int(query["end"][0]) - int(query["start"][0]) == 2 * 3_600_000_000


def jaeger_span(trace_id: str, span_id: str, parent: str | None, name: str, tags: dict[str, object]) -> dict:
    return {
        "traceID": trace_id,
        "spanID": span_id,
        "operationName": name,
        "references": [{"refType": "CHILD_OF", "spanID": parent}] if parent else [],
        "startTime": 1_000,
        "duration": 500,
        "processID": "p1",
        "tags": [{"key": key, "type": "string", "value": value} for key, value in tags.items()],
    }


def test_without_service_traces_known_only_by_rollup_or_deprecated_names_are_found(capsys, serve):
    """Without --service, a trace whose provider is only in its root's roll-up, and one whose LLM span has
    only the deprecated gen_ai.system and a Bedrock model id, are found though no span has the provider tag.

    The fake Jaeger matches tags like Jaeger does: every tag on one span, exact values."""
    rollup_only = {
        "traceID": "trace-r",
        "processes": {"p1": {"serviceName": "chat-worker"}},
        "spans": [jaeger_span("trace-r", "r", None, "chat process", {semconv.ROLLUP_PROVIDER: "aws.bedrock",
                                                         semconv.ROLLUP_MODEL: BEDROCK_MODEL,
                                                         semconv.ROLLUP_CALLS: "1"})],
    }
    deprecated = {
        "traceID": "trace-d",
        "processes": {"p1": {"serviceName": "chat-worker"}},
        "spans": [
            jaeger_span("trace-d", "d", None, "chat process", {}),
            jaeger_span("trace-d", "e", "d", "ChatBedrock", {semconv.GEN_AI_SYSTEM: "anthropic",
                                                  semconv.GEN_AI_REQUEST_MODEL: BEDROCK_MODEL,
                                                  semconv.GEN_AI_OPERATION_NAME: "chat"}),
        ],
    }
    stored = [rollup_only, deprecated]

    def find_traces(query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        wanted = json.loads(query["tags"][0]).items() if "tags" in query else ()
        found = [
            trace
            for trace in stored
            if not wanted
            or any(all({"key": k, "type": "string", "value": v} in span["tags"] for k, v in wanted)
                   for span in trace["spans"])
        ]
        return jaeger_json(found)

    server = serve({"/api/services": jaeger_json(["chat-worker"]), "/api/traces": find_traces})
    code, out, err = run_search(capsys, "--jaeger-url", server.url, "--provider", "bedrock", "--json")
    assert code == 0, err
    assert sorted(summary["trace_id"] for summary in json.loads(out)) == [
        "trace-d".zfill(32),
        "trace-r".zfill(32),
    ]


def test_min_duration_alone_is_sent_to_jaeger(capsys, serve):
    """Without tag filters, minDuration goes to Jaeger (any span that long makes the trace that long)."""
    server = serve({"/api/services": jaeger_json(["chat-api"]), "/api/traces": jaeger_json([])})
    run_search(capsys, "--jaeger-url", server.url, "--service", "chat-api", "--min-duration", "1.5s")
    [path] = server.requests
    query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
    assert query["minDuration"] == ["1500000us"] and query["limit"] == [str(DEFAULT_LIMIT)]


def test_a_named_service_is_asked_without_tags_and_filtered_here(capsys, serve):
    """With --service no filter is sent (badger matches tags per service) and more traces are scanned."""
    server = serve({"/api/traces": jaeger_json([])})
    run_search(capsys, "--jaeger-url", server.url, "--service", "chat-api", "--provider", "openai")
    [path] = server.requests
    query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
    assert query["service"] == ["chat-api"] and "tags" not in query and query["limit"] == [str(SCAN_LIMIT)]


@pytest.mark.parametrize(
    "args", [["--lookback", "soon"], ["--min-duration", "5"], ["--limit", "0"], ["--limit", "x"]]
)
def test_bad_arguments_exit_2_naming_the_rule(capsys, args):
    """argparse rejects malformed durations and limits with exit code 2."""
    with pytest.raises(SystemExit) as exited:
        main(["search", *args])
    assert exited.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_a_url_without_scheme_is_refused(capsys):
    """--jaeger-url must be an http(s) URL: exit 2 and one line naming the option."""
    code, _, err = run_search(capsys, "--jaeger-url", "127.0.0.1:16686")
    assert code == EXIT_ERROR
    assert err == (
        "otel-llm search: --jaeger-url / $OTEL_LLM_JAEGER_URL '127.0.0.1:16686' "
        "must start with http:// or https://\n"
    )


@pytest.mark.parametrize(
    ("text", "microseconds"),
    [("250ms", 250_000), ("1.5s", 1_500_000), ("15m", 900_000_000), ("1d", 86_400_000_000), ("7us", 7)],
)
def test_durations_parse_to_microseconds(text, microseconds):
    """Durations take a number and one unit."""
    assert parse_duration(text) == microseconds


def make_trace(duration_us: int, attributes: dict) -> Trace:
    llm_attributes = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_SYSTEM: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: BEDROCK_MODEL,
    }
    return Trace(
        "t",
        (
            Span("t", "r", None, "root", "chat-worker", 0, duration_us, attributes, False),
            Span("t", "l", "r", "ChatBedrock", "chat-worker", 1, 10, llm_attributes, False),
        ),
    )


def test_filter_checks_the_whole_trace_with_semconv_rules():
    """Provider (alias normalised), model, arm, intent tag or metadata, and trace duration must all hold."""
    trace = make_trace(
        2_000_000, {semconv.EXPERIMENT_ARM: "b", semconv.LANGSMITH_SPAN_TAGS: "chat, intent:general"}
    )
    assert TraceFilter(
        provider="bedrock", model=BEDROCK_MODEL, arm="b", intent="general", min_duration_us=2_000_000
    ).matches(trace)
    assert not TraceFilter(provider="anthropic").matches(trace)
    assert not TraceFilter(model="gpt-4o-mini").matches(trace)
    assert not TraceFilter(arm="a").matches(trace)
    assert not TraceFilter(intent="waste").matches(trace)
    assert not TraceFilter(min_duration_us=2_000_001).matches(trace)
    assert TraceFilter(intent="weather").matches(make_trace(1, {semconv.LANGSMITH_INTENT: "weather"}))


def test_filter_rejects_a_negative_duration():
    """Construction validates min_duration_us."""
    with pytest.raises(ValueError, match="min_duration_us"):
        TraceFilter(min_duration_us=-1)
