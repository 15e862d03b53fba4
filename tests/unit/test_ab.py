"""The A/B report: statistics, samples from Jaeger's JSON, the per-arm report, table, JSON and PNG."""

from __future__ import annotations

import json
import random

import pytest

from otel_llm import semconv
from otel_llm.ab import report as ab_report
from otel_llm.ab import sources, stats
from otel_llm.ab.chart import write_chart
from otel_llm.cli import build_parser
from otel_llm.traces import from_jaeger

OPENAI = "openai:gpt-4o-mini"
BEDROCK = "aws.bedrock:anthropic.claude-3-haiku-20240307-v1:0"


class TestStats:
    def test_percentile_interpolates(self):
        """Percentiles interpolate linearly between ranks (numpy's default)."""
        assert stats.percentile([1, 2, 3, 4], 50) == 2.5
        assert stats.percentile([5], 99) == 5
        assert stats.percentile([], 50) is None
        assert stats.percentile(list(range(101)), 95) == 95

    def test_percentile_range_checked(self):
        """q outside 0..100 is refused."""
        with pytest.raises(ValueError, match="q"):
            stats.percentile([1], 101)

    def test_mann_whitney_matches_reference_value(self):
        """Fully separated samples of 10: U=0 and p=1.827e-4 (scipy's asymptotic, continuity-corrected)."""
        result = stats.mann_whitney_u(list(range(1, 11)), list(range(11, 21)))
        assert result.u == 0 and result.probability_greater == 0
        assert result.p_value == pytest.approx(1.827e-4, rel=1e-3)

    def test_mann_whitney_with_ties(self):
        """Ties get average ranks and the tie-corrected variance (by hand: U=17, var=86.4, z=-1.560)."""
        result = stats.mann_whitney_u([1, 2, 2, 3, 3, 3, 4, 5], [2, 3, 3, 4, 4, 5, 5, 6])
        assert result.u == 17.0
        assert result.z == pytest.approx(-14.5 / 86.4**0.5)
        assert result.p_value == pytest.approx(0.1188, abs=0.0005)

    def test_all_equal_is_not_significant(self):
        """Identical constant samples give p=1."""
        assert stats.mann_whitney_u([1.0] * 10, [1.0] * 10).p_value == 1.0

    def test_too_few_samples_give_no_p_value(self):
        """Below MIN_SAMPLES per side there is no p-value; empty samples are refused."""
        assert stats.mann_whitney_u([1, 2], [3, 4]).p_value is None
        with pytest.raises(ValueError):
            stats.mann_whitney_u([], [1])


def sample(arm, seconds, error=False, tokens=10):
    return sources.TraceSample(f"{arm}-{seconds}-{random.random()}", arm, "ab1", seconds, error, tokens)


def two_arms(slow_factor: float, n: int = 60, seed: int = 7):
    rng = random.Random(seed)
    fast = [sample(OPENAI, rng.lognormvariate(-1.5, 0.3)) for _ in range(n)]
    slow = [sample(BEDROCK, rng.lognormvariate(-1.5, 0.3) * slow_factor) for _ in range(n)]
    return fast + slow


class TestReport:
    def test_slower_arm_named_and_significant(self):
        """With one arm 1.5x slower the report names it and calls the difference significant."""
        report = ab_report.build_report(two_arms(1.5), alpha=0.05, experiment="ab1")
        assert report.slower_arm == BEDROCK and report.significant
        (comparison,) = report.comparisons
        assert comparison.baseline == OPENAI and comparison.p_value < 0.001
        assert comparison.median_ratio == pytest.approx(1.5, rel=0.2)

    def test_identical_arms_not_significant(self):
        """Two arms drawn from one distribution are not called significantly different."""
        rng = random.Random(3)
        samples = [sample(arm, rng.lognormvariate(-1.5, 0.3)) for arm in (OPENAI, BEDROCK) for _ in range(60)]
        report = ab_report.build_report(samples)
        assert not report.significant and report.comparisons[0].p_value > 0.05

    def test_per_arm_numbers(self):
        """Requests, error rate, percentiles, TTFT and tokens per request per arm."""
        samples = [sample(OPENAI, s / 10, error=(s == 1), tokens=s) for s in range(1, 11)]
        (arm,) = ab_report.build_report(samples, ttft={50: {OPENAI: 0.02}, 95: {OPENAI: 0.05}}).arms
        assert (arm.requests, arm.errors, arm.error_rate) == (10, 1, 0.1)
        assert arm.p50_s == pytest.approx(0.55) and arm.p99_s == pytest.approx(0.991)
        assert (arm.ttft_p50_s, arm.ttft_p95_s, arm.tokens_per_request) == (0.02, 0.05, 5.5)

    def test_single_arm_has_no_comparison(self):
        """One arm only: no comparison, no slower arm, and the table says so."""
        report = ab_report.build_report([sample(OPENAI, 0.1)])
        assert report.comparisons == [] and report.slower_arm is None
        assert "nothing to compare" in ab_report.render_table(report)

    def test_table_and_json(self):
        """The table has a row per arm and the verdict; to_dict is JSON-serialisable."""
        report = ab_report.build_report(two_arms(1.5))
        table = ab_report.render_table(report)
        assert OPENAI in table and BEDROCK in table and f"{BEDROCK} is slower" in table
        assert json.loads(json.dumps(report.to_dict()))["slower_arm"] == BEDROCK

    def test_bad_alpha(self):
        """alpha outside (0, 1) is refused."""
        with pytest.raises(ValueError, match="alpha"):
            ab_report.build_report([], alpha=1.5)

    def test_png_chart(self, tmp_path):
        """write_chart produces a PNG file."""
        path = write_chart(ab_report.build_report(two_arms(1.5)), tmp_path / "ab.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def jaeger_trace(trace_id, arm, start, duration, error=False, experiment="ab1"):
    """A Jaeger /api/traces trace: an API root with the arm, a worker consumer, an LLM span with tokens."""
    root_tags = [
        {"key": semconv.EXPERIMENT_ARM, "type": "string", "value": arm},
        {"key": semconv.EXPERIMENT_ID, "type": "string", "value": experiment},
    ]
    llm_tags = [
        {"key": semconv.GEN_AI_OPERATION_NAME, "type": "string", "value": "chat"},
        {"key": semconv.GEN_AI_REQUEST_MODEL, "type": "string", "value": "gpt-4o-mini"},
        {"key": semconv.GEN_AI_USAGE_INPUT_TOKENS, "type": "int64", "value": 7},
        {"key": semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "type": "int64", "value": 5},
    ]
    if error:
        llm_tags.append({"key": "error", "type": "bool", "value": True})
    return {
        "traceID": trace_id,
        "processes": {"p1": {"serviceName": "api"}, "p2": {"serviceName": "worker"}},
        "spans": [
            {
                "traceID": trace_id,
                "spanID": "a",
                "operationName": "POST /chat",
                "references": [],
                "startTime": start,
                "duration": 1000,
                "tags": root_tags,
                "processID": "p1",
            },
            {
                "traceID": trace_id,
                "spanID": "b",
                "operationName": "job",
                "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "a"}],
                "startTime": start + 500,
                "duration": duration - 500,
                "tags": [],
                "processID": "p2",
            },
            {
                "traceID": trace_id,
                "spanID": "c",
                "operationName": "ChatOpenAI",
                "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "b"}],
                "startTime": start + 600,
                "duration": 100,
                "tags": llm_tags,
                "processID": "p2",
            },
        ],
    }


class TestSamples:
    def test_sample_from_jaeger_trace(self):
        """Arm from the root, duration end to end across processes, tokens from the LLM span, error flag."""
        traces = from_jaeger({"data": [jaeger_trace("t1", OPENAI, 1_000_000, 250_000, error=True)]})
        (got,) = sources.samples_from_traces(traces)
        assert (got.arm, got.experiment, got.duration_s, got.error, got.tokens) == (
            OPENAI,
            "ab1",
            0.25,
            True,
            12,
        )

    def test_traces_without_arm_or_other_experiment_skipped(self):
        """Traces without an arm, of another experiment, or repeated, are not samples twice."""
        plain = jaeger_trace("t2", OPENAI, 0, 1000)
        for span in plain["spans"]:
            span["tags"] = [t for t in span["tags"] if t["key"] != semconv.EXPERIMENT_ARM]
        data = [
            plain,
            jaeger_trace("t3", OPENAI, 0, 1000, experiment="other"),
            jaeger_trace("t4", OPENAI, 0, 1000),
            jaeger_trace("t4", OPENAI, 0, 1000),
        ]
        got = sources.samples_from_traces(from_jaeger({"data": data}), experiment="ab1")
        assert [s.trace_id.lstrip("0") for s in got] == ["t4"]


class TestPrometheusParsing:
    def test_ttft_by_arm_then_by_model(self):
        """TTFT comes from the arm label, else from the arm's model label; NaN series are dropped."""
        answers = {
            sources.ARM_LABEL: [({sources.ARM_LABEL: OPENAI}, "0.12"), ({sources.ARM_LABEL: "x"}, "NaN")],
            sources.MODEL_LABEL: [({sources.MODEL_LABEL: "anthropic.claude-3-haiku-20240307-v1:0"}, "0.3")],
        }
        asked = []

        def fetch(url):
            asked.append(url)
            label = sources.ARM_LABEL if sources.ARM_LABEL in url else sources.MODEL_LABEL
            return {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": m, "value": [0, v]} for m, v in answers[label]],
                },
            }

        ttft = sources.PrometheusSource("http://prom", fetch).time_to_first_token(
            [OPENAI, BEDROCK], 0.5, "60s"
        )
        assert ttft == {OPENAI: 0.12, BEDROCK: 0.3}
        assert "histogram_quantile" in asked[0] and "increase" in asked[0]

    def test_prometheus_error_is_source_error(self):
        """An error answer becomes SourceError with the query in the message."""
        prom = sources.PrometheusSource("http://prom", lambda url: {"status": "error", "error": "bad"})
        with pytest.raises(sources.SourceError, match="bad"):
            prom.query("up")


class TestCli:
    def test_parser_defaults_and_alpha_check(self):
        """`otel-llm ab` parses its flags and refuses an alpha outside (0, 1)."""
        args = build_parser().parse_args(["ab", "--experiment", "ab1", "--json"])
        assert (args.experiment, args.alpha, args.json, args.lookback) == ("ab1", 0.05, True, "15m")
        with pytest.raises(SystemExit):
            build_parser().parse_args(["ab", "--alpha", "2"])

    def test_unreachable_jaeger_exits_2(self, capsys):
        """An unreachable Jaeger gives exit code 2 and one line on stderr."""
        args = build_parser().parse_args(
            ["ab", "--jaeger-url", "http://127.0.0.1:9", "--prometheus-url", "http://127.0.0.1:9"]
        )
        assert args.handler(args) == 2
        assert "otel-llm ab:" in capsys.readouterr().err
