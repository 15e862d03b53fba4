"""METRIC| log lines exporter: selection, fields, escaping, destinations, env switch."""

from __future__ import annotations

import io
import logging
import pathlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_llm import semconv
from otel_llm.exporters import metric_log
from otel_llm.settings import reset_warnings
from tests.support.fuzz import fuzz_settings


@pytest.fixture(autouse=True)
def fresh_context():
    """Each test starts with no current span or baggage, whatever an earlier test left attached."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)



@pytest.fixture
def spans():
    """A tracer of a real provider and the in-memory exporter holding its finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


# The documented rule: left to right, a backslash takes the next character with it, so a field runs to the
# first | preceded by an even number of backslashes.
FIELD = r"\|((?:[^|\\]|\\.)*)"


def split_fields(line: str) -> dict[str, str]:
    """Parses a METRIC line the documented way: fields, each key up to its first =, values unescaped."""
    assert re.fullmatch(rf"METRIC(?:{FIELD})*", line), line
    fields = {}
    for field in re.findall(FIELD, line):
        key, _, value = field.partition("=")
        fields[key] = unescape(value)
    return fields


def unescape(value: str) -> str:
    """The documented unescaping: \\n, \\r, \\uXXXX (four hex digits), else the escaped character itself."""
    def one(match: re.Match) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return {"n": "\n", "r": "\r"}.get(match.group(2), match.group(2))

    return re.sub(r"\\(?:u([0-9a-f]{4})|(.))", one, value, flags=re.DOTALL)


def request_and_llm_spans(tracer):
    with tracer.start_as_current_span(
        "POST /api/v1/chat",
        kind=SpanKind.SERVER,
        attributes={
            "http.route": "/api/v1/chat",
            semconv.ROLLUP_PROVIDER: "openai",
            semconv.ROLLUP_MODEL: "gpt-4o-mini",
            semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini",
        },
    ):
        with tracer.start_as_current_span(
            "ChatOpenAI",
            attributes={
                semconv.LANGSMITH_SPAN_KIND: "llm",
                semconv.LANGSMITH_LS_PROVIDER: "openai",
                semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            },
        ):
            pass
        with tracer.start_as_current_span("format_answer"):
            pass


class TestLines:
    def test_request_root_line_from_rollup(self, spans):
        """A SERVER local root gives event=request with path, roll-up provider/model, ms_total and arm."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        lines = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        request = [split_fields(line) for line in lines if "event=request" in line]
        assert len(request) == 1
        fields = request[0]
        assert fields["path"] == "/api/v1/chat"
        assert (fields["provider"], fields["model"]) == ("openai", "gpt-4o-mini")
        assert float(fields["ms_total"]) >= 0
        assert fields["arm"] == "openai:gpt-4o-mini" and fields["status"] == "ok"
        assert fields["provider_source"] == "rollup"

    def test_request_without_calls_takes_the_assigned_arm_and_says_so(self, spans):
        """The API's request root (its LLM calls run in the worker) reports the assigned provider/model,
        marked provider_source=arm; the arm name alone is enough."""
        tracer, exporter = spans
        with tracer.start_as_current_span(
            "POST /api/v1/chat",
            kind=SpanKind.SERVER,
            attributes={
                semconv.EXPERIMENT_ID: "ab1",
                semconv.EXPERIMENT_ARM: "aws.bedrock:anthropic.claude-3-haiku-20240307-v1:0",
                semconv.EXPERIMENT_PROVIDER: "aws.bedrock",
                semconv.EXPERIMENT_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "job", kind=SpanKind.CONSUMER, attributes={semconv.EXPERIMENT_ARM: "openai:gpt-4o"}
        ):
            pass
        lines = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        assert [
            (f["provider"], f["model"], f["provider_source"], f.get("experiment"))
            for f in map(split_fields, lines)
        ] == [
            ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "arm", "ab1"),
            ("openai", "gpt-4o", "arm", None),
        ]

    def test_llm_span_line_and_unselected_span_skipped(self, spans):
        """The LLM span gets event=span with its own provider/model; a plain internal span gets no line."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        lines = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        span_lines = [split_fields(line) for line in lines if "event=span" in line]
        assert [f["name"] for f in span_lines] == ["ChatOpenAI"]
        assert (span_lines[0]["provider"], span_lines[0]["model"]) == ("openai", "gpt-4o-mini")
        assert list(span_lines[0])[:5] == ["event", "name", "ms", "provider", "model"]

    def test_langgraph_node_span_uses_rollup(self, spans):
        """A LangGraph node span is selected by default and reports its roll-up."""
        tracer, exporter = spans
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span(
                "answer",
                attributes={
                    semconv.LANGSMITH_LANGGRAPH_NODE: "answer",
                    semconv.ROLLUP_PROVIDER: "aws.bedrock",
                    semconv.ROLLUP_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
                },
            ):
                pass
        lines = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        assert lines == [line for line in lines if "name=answer" in line] and len(lines) == 1
        assert split_fields(lines[0])["model"] == "anthropic.claude-3-haiku-20240307-v1:0"

    def test_name_patterns_replace_default_selection(self, spans):
        """With patterns, only spans whose names match get event=span lines."""
        tracer, exporter = spans
        with tracer.start_as_current_span("root"):
            for name in ("ask_llm_total", "ask_llm_retry", "ChatOpenAI"):
                with tracer.start_as_current_span(name, attributes={semconv.GEN_AI_OPERATION_NAME: "chat"}):
                    pass
        selector = metric_log.name_patterns_selector(["ask_llm_*"])
        lines = metric_log.MetricLogExporter(io.StringIO(), selector).lines(exporter.get_finished_spans())
        assert [split_fields(line)["name"] for line in lines] == ["ask_llm_total", "ask_llm_retry"]

    def test_missing_provider_model_are_unknown_and_error_status(self, spans):
        """A request root without roll-up says unknown; an error status says status=error."""
        tracer, exporter = spans
        with tracer.start_as_current_span("job", kind=SpanKind.CONSUMER) as span:
            span.set_status(Status(StatusCode.ERROR))
        (line,) = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        fields = split_fields(line)
        assert (fields["path"], fields["provider"], fields["model"], fields["status"]) == (
            "job",
            "unknown",
            "unknown",
            "error",
        )
        assert "provider_source" not in fields


class TestEscaping:
    @pytest.mark.parametrize(
        "value",
        ["a|b", "k=v", "back\\slash", "ends in a backslash\\", "\\\\", "two\nlines", "|=\\|", "", "plain"],
    )
    def test_escaped_values_round_trip(self, value):
        """Escaped values never contain a bare | or = and parse back to the original."""
        line = metric_log.format_line([("event", "span"), ("name", value), ("ms", "1.000")])
        assert "\n" not in line
        assert split_fields(line) == {"event": "span", "name": value, "ms": "1.000"}

    @pytest.mark.parametrize("brk", ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
                                     "\u2028", "\u2029", "\x00", "\x7f"])
    def test_every_line_break_is_escaped(self, brk):
        """Each character str.splitlines (or a log agent) breaks on leaves the line one line."""
        line = metric_log.format_line([("event", "span"), ("name", f"a{brk}b")])
        assert line.splitlines() == [line]
        assert split_fields(line)["name"] == f"a{brk}b"

    def test_values_are_capped_and_a_huge_name_stays_under_the_line_bound(self):
        """A 300 kB span name is cut to MAX_VALUE_CHARS; the line stays under MAX_LINE_BYTES."""
        line = metric_log.format_line([("event", "span"), ("name", "\u2028" * 300_000)])
        assert split_fields(line)["name"] == "\u2028" * metric_log.MAX_VALUE_CHARS
        assert len(line.encode()) < metric_log.MAX_LINE_BYTES

    @given(st.lists(st.text(), min_size=9, max_size=9))
    @fuzz_settings()
    def test_any_values_make_one_parseable_bounded_line(self, values):
        """Whatever nine values hold, the line is one line, under the bound, and parses back to them (cut)."""
        keys = ["event", "path", "provider", "model", "ms_total", "status", "experiment", "arm",
                "provider_source"]
        line = metric_log.format_line(list(zip(keys, values, strict=True)))
        assert line.splitlines() == [line]
        assert len(line.encode()) < metric_log.MAX_LINE_BYTES
        cut = [value[:metric_log.MAX_VALUE_CHARS] for value in values]
        assert split_fields(line) == dict(zip(keys, cut, strict=True))

    def test_non_string_values_are_text(self):
        """Numbers and other objects are written as their text; None fields are left out."""
        assert metric_log.format_line([("a", 1.5), ("b", None), ("c", True)]) == "METRIC|a=1.5|c=True"


class TestCloudWatchQueries:
    """The Logs Insights regexes of docs/experiments.md, read from the doc, on escaped lines."""

    DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "experiments.md"
    TRICKY = "a|b=c\\"  # a separator, an equals sign and a trailing backslash, escaped in the line

    def doc_regexes(self, command: str) -> list[re.Pattern]:
        """The /.../ regexes of the doc's `parse @message` or `filter @message like` lines, as Python regexes
        (CloudWatch's named groups are (?<name>...), Python's (?P<name>...))."""
        found = re.findall(rf"^\| {command} @message (?:like )?/(.+)/$", self.DOC.read_text(), re.MULTILINE)
        return [re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", regex)) for regex in found]

    def parsed(self, line: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        for regex in self.doc_regexes("parse"):
            match = regex.search(line)
            if match:
                fields.update(match.groupdict())
        return fields

    def test_request_query_extracts_each_field_of_a_request_line(self, spans):
        """provider, model, ms_total, arm and provider_source come out as the line wrote them (escaped),
        even when an earlier value holds an escaped separator, an equals sign and a trailing backslash."""
        tracer, exporter = spans
        with tracer.start_as_current_span(
            "job",
            kind=SpanKind.CONSUMER,
            attributes={
                "http.route": f"/x{self.TRICKY}|provider=evil",
                semconv.ROLLUP_PROVIDER: f"openai{self.TRICKY}",
                semconv.ROLLUP_MODEL: "gpt-4o-mini",
                semconv.EXPERIMENT_ARM: f"openai:gpt{self.TRICKY}",
            },
        ):
            pass
        (line,) = metric_log.MetricLogExporter(io.StringIO()).lines(exporter.get_finished_spans())
        fields = self.parsed(line)
        assert {key: unescape(value) for key, value in fields.items()} == {
            "provider": f"openai{self.TRICKY}",
            "model": "gpt-4o-mini",
            "ms_total": split_fields(line)["ms_total"],
            "arm": f"openai:gpt{self.TRICKY}",
            "provider_source": "rollup",
        }
        assert fields["provider"] == metric_log.escape(f"openai{self.TRICKY}")

    def test_span_query_extracts_ms_provider_and_model(self):
        """The ask_llm_total query's one regex takes ms, provider and model of a span line."""
        line = metric_log.format_line(
            [("event", "span"), ("name", "ask_llm_total"), ("ms", "402.118"),
             ("provider", f"p{self.TRICKY}"), ("model", "m|1"), ("arm", "x")]
        )
        (regex,) = [r for r in self.doc_regexes("parse") if "ms" in r.groupindex]
        match = regex.search(line)
        assert match is not None
        assert {k: unescape(v) for k, v in match.groupdict().items()} == {
            "ms": "402.118",
            "provider": f"p{self.TRICKY}",
            "model": "m|1",
        }

    def test_filters_select_their_lines_only(self):
        """The request filter matches request lines only; the ask_llm_total filter that span's lines only."""
        request = metric_log.format_line([("event", "request"), ("path", "event=span|name=ask_llm_total")])
        span = metric_log.format_line([("event", "span"), ("name", "ask_llm_total"), ("ms", "1.0")])
        other = metric_log.format_line([("event", "span"), ("name", "ask_llm_total_v2"), ("ms", "1.0")])
        request_filter, span_filter = self.doc_regexes("filter")
        assert [bool(request_filter.search(line)) for line in (request, span, other)] == [True, False, False]
        assert [bool(span_filter.search(line)) for line in (request, span, other)] == [False, True, False]

    @given(st.text(), st.text(), st.text(), st.text())
    @fuzz_settings()
    def test_doc_regexes_extract_any_values(self, path, provider, model, arm):
        """For any text in the earlier and the extracted fields, the doc's request regexes take each value
        exactly as written, and it unescapes to the value (cut to MAX_VALUE_CHARS)."""
        line = metric_log.format_line([
            ("event", "request"), ("path", path), ("provider", provider), ("model", model),
            ("ms_total", "1.5"), ("status", "ok"), ("arm", arm), ("provider_source", "rollup")])
        fields = self.parsed(line)
        cap = metric_log.MAX_VALUE_CHARS
        assert {key: unescape(value) for key, value in fields.items() if key != "ms"} == {
            "provider": provider[:cap], "model": model[:cap], "ms_total": "1.5", "arm": arm[:cap],
            "provider_source": "rollup"}
        request_filter, _ = self.doc_regexes("filter")
        assert request_filter.search(line)

    def test_every_doc_regex_is_covered(self):
        """The doc's regexes are the ones these tests know (a new one needs a test)."""
        groups = sorted(name for regex in self.doc_regexes("parse") for name in regex.groupindex)
        assert groups == sorted(
            ["provider", "model", "ms_total", "arm", "provider_source", "ms", "provider", "model"]
        )
        assert len(self.doc_regexes("filter")) == 2


class TestExporter:
    def test_export_writes_one_line_per_span_to_stream(self, spans):
        """export() writes the lines, newline-terminated, to the given stream."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        out = io.StringIO()
        result = metric_log.MetricLogExporter(out).export(exporter.get_finished_spans())
        assert result is SpanExportResult.SUCCESS
        assert [line.split("|")[1] for line in out.getvalue().splitlines()] == ["event=span", "event=request"]

    def test_file_destination_appends(self, spans, tmp_path):
        """A path destination is appended to and closed on shutdown."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        path = tmp_path / "metric.log"
        path.write_text("earlier\n")
        log_exporter = metric_log.MetricLogExporter(str(path))
        log_exporter.export(exporter.get_finished_spans())
        log_exporter.shutdown()
        lines = path.read_text().splitlines()
        assert lines[0] == "earlier" and len(lines) == 3
        assert log_exporter.export(exporter.get_finished_spans()) is SpanExportResult.FAILURE

    def test_stdout_destination(self, spans, capsys):
        """'stdout' writes to the current sys.stdout."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        metric_log.MetricLogExporter("stdout").export(exporter.get_finished_spans())
        assert capsys.readouterr().out.count("METRIC|") == 2

    def test_one_unreadable_span_costs_only_its_own_line(self, spans, caplog):
        """A span whose attributes cannot be read is skipped and counted; the batch's other lines are
        written."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)
        good = list(exporter.get_finished_spans())

        class Unreadable(ReadableSpan):
            @property
            def attributes(self):
                raise RuntimeError("unreadable")

        bad = Unreadable(name="POST /x", kind=SpanKind.SERVER)
        out = io.StringIO()
        writer = metric_log.MetricLogExporter(out)
        with caplog.at_level(logging.WARNING):
            assert writer.export([good[0], bad, *good[1:]]) is SpanExportResult.SUCCESS
        assert out.getvalue().count("METRIC|") == 2
        assert writer.drops.counts() == {"metric_line_failed": 1}

    def test_broken_stream_fails_without_raising(self, spans):
        """A stream that raises on write gives FAILURE, never an exception."""
        tracer, exporter = spans
        request_and_llm_spans(tracer)

        class Broken(io.StringIO):
            def write(self, text):
                raise OSError("disk full")

        assert metric_log.MetricLogExporter(Broken()).export(exporter.get_finished_spans()) is (
            SpanExportResult.FAILURE
        )

    @pytest.mark.parametrize("bad", ["", "   ", 42])
    def test_bad_destination_rejected(self, bad):
        """An empty or non-stream destination raises ValueError naming the parameter."""
        with pytest.raises(ValueError, match="destination"):
            metric_log.MetricLogExporter(bad)

    def test_bad_patterns_rejected(self):
        """An empty pattern list is refused."""
        with pytest.raises(ValueError, match="patterns"):
            metric_log.name_patterns_selector([])


class TestFromEnv:
    def test_off_by_default(self):
        """Without OTEL_LLM_METRIC_LOG there is no exporter."""
        assert metric_log.exporter_from_env({}) is None

    def test_env_file_and_patterns(self, tmp_path):
        """OTEL_LLM_METRIC_LOG=<path> and OTEL_LLM_METRIC_LOG_SPANS write through a batch processor."""
        path = tmp_path / "m.log"
        exporter = metric_log.exporter_from_env(
            {"OTEL_LLM_METRIC_LOG": str(path), "OTEL_LLM_METRIC_LOG_SPANS": "ask_llm_*"}
        )
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span("ask_llm_total"):
                pass
        provider.shutdown()
        (line,) = path.read_text().splitlines()
        assert line.startswith("METRIC|event=span|name=ask_llm_total|ms=")

    def test_unwritable_path_warns_once_and_is_off(self, tmp_path, caplog):
        """A path that cannot be opened gives one warning naming the variable, and no exporter."""
        reset_warnings()
        with caplog.at_level(logging.WARNING):
            exporter = metric_log.exporter_from_env({"OTEL_LLM_METRIC_LOG": str(tmp_path / "no" / "such")})
        assert exporter is None
        assert [r for r in caplog.records if "OTEL_LLM_METRIC_LOG" in r.getMessage()]

    def test_global_provider_untouched(self):
        """Building from env does not install a global tracer provider."""
        before = trace.get_tracer_provider()
        metric_log.exporter_from_env({"OTEL_LLM_METRIC_LOG": "stderr"})
        assert trace.get_tracer_provider() is before
