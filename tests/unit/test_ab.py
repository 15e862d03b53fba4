"""The A/B report: statistics, samples from Jaeger's JSON, the per-arm report, table, JSON and PNG."""

from __future__ import annotations

import json
import random
import sys
import urllib.parse

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

    def test_small_samples_get_the_exact_p_value(self):
        """4 against 4, fully separated: the exact two-sided p, 2/C(8,4) = 2/70 (no normal approximation)."""
        result = stats.mann_whitney_u([5, 6, 7, 8], [1, 2, 3, 4])
        assert result.u == 16 and result.probability_greater == 1
        assert result.p_value == pytest.approx(2 / 70)

    def test_all_equal_is_not_significant(self):
        """Identical constant samples give p=1 and a zero difference."""
        assert stats.mann_whitney_u([1.0] * 10, [1.0] * 10).p_value == 1.0
        difference = stats.median_difference([1.0] * 10, [1.0] * 10, 0.95)
        assert (difference.seconds, difference.seconds_interval, difference.relative) == (0, (0, 0), 0)

    def test_holm_keeps_untested_none(self):
        """Holm by hand (m=4: 0.01*4, 0.03*3, max(0.09, 0.04*2), 0.9*1); None stays None, uncounted."""
        adjusted = stats.holm([0.04, None, 0.01, 0.03, 0.9])
        assert adjusted[1] is None
        assert adjusted == pytest.approx([0.09, None, 0.04, 0.09, 0.9])
        assert stats.holm([0.6, 0.7]) == [1.0, 1.0]
        assert stats.holm([0.2]) == [0.2] and stats.holm([]) == []

    def test_too_few_samples_give_no_p_value(self):
        """Below MIN_SAMPLES per side there is no p-value; empty samples are refused."""
        assert stats.mann_whitney_u([1, 2, 3], [3, 4, 5, 6]).p_value is None
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

    def test_figures_are_the_libraries_own_on_the_same_samples(self):
        """p-value, Holm adjustment and the bootstrap intervals of the median difference (ms and %) are what
        SciPy and statsmodels give when called directly on the report's samples."""
        import numpy
        from scipy.stats import bootstrap, mannwhitneyu
        from statsmodels.stats.multitest import multipletests

        third = "anthropic:claude-3-haiku"
        samples = two_arms(1.5, n=12) + [sample(third, s.duration_s * 1.2) for s in two_arms(1, n=12)[:12]]
        report = ab_report.build_report(samples, alpha=0.1)
        durations = {arm: [s.duration_s for s in samples if s.arm == arm] for arm in (OPENAI, BEDROCK, third)}
        raw = {arm: mannwhitneyu(durations[arm], durations[OPENAI]).pvalue for arm in (BEDROCK, third)}
        adjusted = dict(zip(raw, multipletests(list(raw.values()), method="holm")[1], strict=True))

        def interval(statistic):
            result = bootstrap(
                (durations[BEDROCK], durations[OPENAI]),
                statistic,
                paired=False,
                confidence_level=0.9,
                n_resamples=stats.BOOTSTRAP_RESAMPLES,
                method="percentile",
                rng=numpy.random.default_rng(stats.BOOTSTRAP_SEED),
            )
            return result.confidence_interval.low, result.confidence_interval.high

        by_arm = {c.arm: c for c in report.comparisons}
        for arm in raw:
            assert (by_arm[arm].p_value, by_arm[arm].p_adjusted) == pytest.approx((raw[arm], adjusted[arm]))
        bedrock = by_arm[BEDROCK]
        median = numpy.median
        assert bedrock.median_difference_s == pytest.approx(
            median(durations[BEDROCK]) - median(durations[OPENAI])
        )
        assert bedrock.median_difference_ci_s == pytest.approx(interval(lambda a, b: median(a) - median(b)))
        assert bedrock.median_change_ci == pytest.approx(interval(lambda a, b: median(a) / median(b) - 1))
        low, high = bedrock.median_difference_ci_s
        assert f"90% CI {low * 1000:+.1f} to {high * 1000:+.1f} ms" in bedrock.verdict
        assert f"{bedrock.median_change * 100:+.1f}% (90% CI" in ab_report.render_table(report)

    def test_identical_arms_not_significant(self):
        """Two arms drawn from one distribution are not called significantly different."""
        rng = random.Random(3)
        samples = [sample(arm, rng.lognormvariate(-1.5, 0.3)) for arm in (OPENAI, BEDROCK) for _ in range(60)]
        report = ab_report.build_report(samples)
        assert not report.significant and report.comparisons[0].p_value > 0.05

    def test_three_arms_are_holm_corrected(self):
        """With three arms both comparisons are Holm-adjusted: two arms whose raw p-values are under alpha
        (0.032, 0.040) but whose adjusted ones are not (0.063) are not called significant."""
        third = "anthropic:claude-3-haiku"
        base = [i / 10 for i in range(1, 21)]
        samples = (
            [sample(OPENAI, s) for s in base]
            + [sample(BEDROCK, s + 0.45) for s in base]
            + [sample(third, s + 0.425) for s in base]
        )
        report = ab_report.build_report(samples, alpha=0.05)
        by_arm = {c.arm: c for c in report.comparisons}
        assert report.correction == "holm" and set(by_arm) == {BEDROCK, third}
        assert all(c.baseline == OPENAI and c.p_value < 0.05 <= c.p_adjusted for c in by_arm.values())
        assert [by_arm[BEDROCK].p_adjusted, by_arm[third].p_adjusted] == stats.holm(
            [by_arm[BEDROCK].p_value, by_arm[third].p_value]
        )
        assert report.slower_arm == BEDROCK and not report.significant
        assert "Holm-adjusted" in by_arm[third].verdict and "holm-adjusted" in ab_report.render_table(report)

    def test_two_arms_are_not_corrected(self):
        """One comparison: the adjusted p-value is the test's own, and no correction is named."""
        report = ab_report.build_report(two_arms(1.5))
        (comparison,) = report.comparisons
        assert comparison.p_adjusted == comparison.p_value and report.correction is None

    def test_per_arm_numbers(self):
        """Requests, error rate, percentiles, TTFT and tokens per request per arm."""
        samples = [sample(OPENAI, s / 10, error=(s == 1), tokens=s) for s in range(1, 11)]
        (arm,) = ab_report.build_report(samples, ttft={50: {OPENAI: 0.02}, 95: {OPENAI: 0.05}}).arms
        assert (arm.requests, arm.errors, arm.error_rate) == (10, 1, 0.1)
        assert arm.p50_s == pytest.approx(0.55) and arm.p99_s == pytest.approx(0.991)
        assert (arm.ttft_p50_s, arm.ttft_p95_s, arm.tokens_per_request) == (0.02, 0.05, 5.5)
        assert arm.ttft_source == "prometheus"

    def test_ttft_from_the_spans_before_prometheus(self):
        """An arm whose LLM spans carry the time to first chunk takes TTFT from them, not from Prometheus."""
        samples = [
            sources.TraceSample(f"t{i}", OPENAI, "ab1", 1.0, False, 10, (i / 100, 0.5)) for i in range(1, 11)
        ]
        (arm,) = ab_report.build_report(samples, ttft={50: {OPENAI: 9.0}, 95: {OPENAI: 9.0}}).arms
        pooled = [i / 100 for i in range(1, 11)] + [0.5] * 10
        assert arm.ttft_p50_s == stats.percentile(pooled, 50) and arm.ttft_p95_s == 0.5
        assert arm.ttft_source == "spans"

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
        {"key": semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "type": "float64", "value": 0.04},
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
        assert got.ttft_s == (0.04,)

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

    def test_ttft_of_one_experiment_only(self):
        """With an experiment id both TTFT queries (by arm, by model) select that experiment's series."""
        asked = []

        def fetch(url):
            asked.append(urllib.parse.unquote_plus(url))
            return {"status": "success", "data": {"resultType": "vector", "result": []}}

        prom = sources.PrometheusSource("http://prom", fetch)
        assert prom.time_to_first_token([OPENAI], 0.5, "60s", experiment='ab"1') == {}
        assert len(asked) == 2
        assert all('llm_experiment_id="ab\\"1"' in url for url in asked)
        prom.time_to_first_token([OPENAI], 0.5, "60s")
        assert "llm_experiment_id" not in asked[-1]

    def test_prometheus_error_is_source_error(self):
        """An error answer becomes SourceError with the query in the message."""
        prom = sources.PrometheusSource("http://prom", lambda url: {"status": "error", "error": "bad"})
        with pytest.raises(sources.SourceError, match="bad"):
            prom.query("up")


class TestCli:
    def test_parser_defaults_and_alpha_check(self):
        """`otel-llm ab` parses its flags and refuses an alpha outside (0, 1)."""
        args = build_parser().parse_args(["ab", "--experiment", "ab1", "--json"])
        assert (args.experiment, args.alpha, args.json, args.lookback) == ("ab1", 0.05, True, "1h")
        with pytest.raises(SystemExit):
            build_parser().parse_args(["ab", "--alpha", "2"])

    @pytest.mark.parametrize("option", ["--jaeger-url", "--prometheus-url"])
    def test_url_without_scheme_exits_2_naming_the_option(self, capsys, option):
        """A URL without http(s):// is one stderr line naming the option, exit 2, no traceback."""
        args = build_parser().parse_args(
            [
                "ab",
                "--jaeger-url",
                "http://127.0.0.1:9",
                "--prometheus-url",
                "http://127.0.0.1:9",
                option,
                "localhost:1",
            ]
        )
        assert args.handler(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"otel-llm ab: {option} ") and "http://" in err and err.count("\n") == 1

    @pytest.mark.parametrize(("missing", "args"), [("scipy", []), ("matplotlib", ["--chart", "x.png"])])
    def test_without_the_ab_extra_exits_2_naming_it_before_any_query(
        self, capsys, monkeypatch, missing, args
    ):
        """An ab extra module missing: exit 2, one stderr line naming the extra, before Jaeger is asked."""
        import builtins

        from otel_llm.cli import main

        real_import = builtins.__import__

        def without(name, *rest, **kwargs):
            if name.partition(".")[0] == missing:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return real_import(name, *rest, **kwargs)

        monkeypatch.delitem(sys.modules, "otel_llm.ab.stats", raising=False)
        monkeypatch.delitem(sys.modules, "otel_llm.ab.report", raising=False)
        monkeypatch.setattr(builtins, "__import__", without)
        monkeypatch.setattr(sources, "jaeger_samples", lambda *a: pytest.fail("Jaeger asked"))
        assert main(["ab", *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert (
            captured.err.startswith("otel-llm ab: needs the 'ab' extra")
            and "pip install '.[ab]'" in captured.err
        )

    def test_unwritable_chart_prints_the_report_then_exits_2(self, capsys, monkeypatch, tmp_path):
        """A chart path that cannot be written: the report is printed, then one stderr line, exit 2."""
        monkeypatch.setattr(sources, "jaeger_samples", lambda *a: two_arms(1.5))
        monkeypatch.setattr(sources.PrometheusSource, "time_to_first_token", lambda *a: {})
        target = tmp_path / "missing-directory" / "ab.png"
        args = build_parser().parse_args(["ab", "--json", "--chart", str(target)])
        assert args.handler(args) == 2
        captured = capsys.readouterr()
        assert json.loads(captured.out)["slower_arm"] == BEDROCK
        assert captured.err.startswith(f"otel-llm ab: cannot write the chart {target}")

    def test_unreachable_jaeger_exits_2(self, capsys):
        """An unreachable Jaeger gives exit code 2 and one line on stderr."""
        args = build_parser().parse_args(
            ["ab", "--jaeger-url", "http://127.0.0.1:9", "--prometheus-url", "http://127.0.0.1:9"]
        )
        assert args.handler(args) == 2
        assert "otel-llm ab:" in capsys.readouterr().err
