"""The SLO file of ``otel-llm load`` (otel_llm/load/slos.yaml): the alert rules agree with it, its targets are
bucket boundaries, and the verdicts count the run's observations; the load profile's stages; the missing
extra."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from otel_llm.cli import main
from otel_llm.cli.search import parse_duration
from otel_llm.load.profile import DEFAULT_STAGES, SEED_STAGES, Stage, parse_stages, users_at
from otel_llm.load.report import LoadReport, render_table, write_chart
from otel_llm.load.slo import (
    ARM_LABEL,
    PERCENTILES,
    SPAN_DURATION_METRIC,
    UNIT_SCALE_MS,
    Verdict,
    difference,
    histogram_quantile,
    load_slos,
    node_queries,
    take_snapshot,
    verdicts,
)
from otel_llm.metrics.streaming import TOKEN_LATENCY_BUCKETS
from otel_llm.stack import paths

ROOT = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((ROOT / "prometheus" / "rules" / "llm-alerts.yml").read_text())
SLOS = load_slos()


def _rules() -> list[dict]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def _span_buckets_ms() -> list[float]:
    config = yaml.safe_load((ROOT / "collector" / "config.yaml").read_text())
    buckets = config["connectors"]["span_metrics"]["histogram"]["explicit"]["buckets"]
    return [parse_duration(bucket) / 1000 for bucket in buckets]


class TestSloFileAndAlertRules:
    @pytest.mark.parametrize("slo", SLOS, ids=lambda slo: slo.name)
    def test_alert_threshold_and_quantile_are_the_slo_files(self, slo):
        """Each SLO's alert computes the percentile the file names and compares it with the file's target (for
        the per-intent response alert: the p95_slo recording rule of that intent)."""
        alert = next(rule for rule in _rules() if rule.get("alert") == slo.alert["name"])
        expr = " ".join(alert["expr"].split())
        target = slo.targets_ms[slo.alert["target"]] / UNIT_SCALE_MS[slo.unit]
        intent = slo.matchers.get("langsmith_metadata_intent")
        if intent is not None:
            (threshold_rule,) = [
                rule
                for rule in _rules()
                if rule.get("record") == "llm:response_duration_ms:p95_slo"
                and rule["labels"]["langsmith_metadata_intent"] == intent
            ]
            threshold = float(re.fullmatch(r"vector\(([0-9.]+)\)", threshold_rule["expr"].strip()).group(1))
            (quantile_rule,) = [
                r for r in _rules() if r.get("record") == "llm:response_duration_ms:p95_by_intent"
            ]
            expr = " ".join(quantile_rule["expr"].split())
        else:
            threshold = float(re.search(r">\s*([0-9.]+)\s*$", expr).group(1))
        assert threshold == pytest.approx(target)
        quantile = float(re.search(r"histogram_quantile\(([0-9.]+)", expr).group(1))
        assert quantile == PERCENTILES[slo.alert["percentile"]]
        assert slo.metric + "_bucket" in expr
        for key, value in slo.matchers.items():
            if key != "langsmith_metadata_intent":  # the recording rule keeps every intent, by label
                assert f'{key}="{value}"' in expr

    @pytest.mark.parametrize("slo", SLOS, ids=lambda slo: slo.name)
    def test_every_target_is_a_bucket_boundary(self, slo):
        """Pass/fail is a count of one bucket, so every target must be a boundary of the SLO's histogram."""
        bounds_ms = (
            _span_buckets_ms()
            if slo.metric == SPAN_DURATION_METRIC
            else [b * UNIT_SCALE_MS["s"] for b in TOKEN_LATENCY_BUCKETS]
        )
        for target in slo.targets_ms.values():
            assert any(abs(target - bound) < 1e-9 for bound in bounds_ms), (slo.name, target, bounds_ms)


def _bucket_series(slo, arm: str, cumulative: dict[float, float]) -> list[tuple[dict[str, str], float]]:
    return [
        ({"le": "+Inf" if le == float("inf") else repr(le), ARM_LABEL: arm}, n)
        for le, n in cumulative.items()
    ]


def _node_series(node: str, arm: str, total_ms: float, count: float, provider="", model=""):
    labels = {
        "span_name": node,
        "llm_langgraph_node": node,
        ARM_LABEL: arm,
        "langsmith_metadata_intent": "general",
        "llm_rollup_provider": provider,
        "llm_rollup_model": model,
    }
    return labels, total_ms, count


class FakePrometheus:
    """Answers the verdict queries from fixed series."""

    def __init__(self, buckets: dict[str, list], nodes: list[tuple[dict, float, float]]) -> None:
        self.buckets, self.nodes = buckets, nodes

    def query(self, promql: str):
        sum_query, count_query = node_queries()
        if promql == sum_query:
            return [(labels, total) for labels, total, _ in self.nodes]
        if promql == count_query:
            return [(labels, count) for labels, _, count in self.nodes]
        return self.buckets.get(promql, [])


INTENT = next(slo for slo in SLOS if slo.name == "intent_classification")
INF = float("inf")


class TestVerdicts:
    def test_counts_only_what_the_run_added(self):
        """Observations before the run (all slow) do not count; the run's 100 fast ones pass every target."""
        before = FakePrometheus(
            {INTENT.bucket_query: _bucket_series(INTENT, "a", {100.0: 0, 300.0: 0, 500.0: 0, INF: 50})}, []
        )
        after = FakePrometheus(
            {
                INTENT.bucket_query: _bucket_series(
                    INTENT, "a", {100.0: 100, 300.0: 100, 500.0: 100, INF: 150}
                )
            },
            [],
        )
        delta = difference(take_snapshot(after.query, [INTENT]), take_snapshot(before.query, [INTENT]))
        (verdict,) = verdicts([INTENT], delta)
        assert (verdict.arm, verdict.count, verdict.ok) == ("a", 100, True)
        assert verdict.within_target == {"p50": 100, "p95": 100, "p99": 100}

    def test_failing_slo_names_the_slowest_node_and_its_rollup(self):
        """95 of 100 within 300 ms pass P95, 98 of 100 within 500 ms fail P99; the bottleneck is the node of
        that arm with the longest mean, with the provider/model of its roll-up."""
        prometheus = FakePrometheus(
            {
                INTENT.bucket_query: _bucket_series(
                    INTENT, "slow", {100.0: 10, 250.0: 90, 300.0: 95, 500.0: 98, INF: 100}
                )
            },
            [
                _node_series("intent", "slow", 40_000.0, 100, "aws.bedrock", "claude"),
                _node_series("answer", "slow", 5_000.0, 100, "aws.bedrock", "claude"),
                _node_series("answer", "other", 900_000.0, 100, "openai", "gpt"),
            ],
        )
        empty = FakePrometheus({}, [])
        delta = difference(take_snapshot(prometheus.query, [INTENT]), take_snapshot(empty.query, [INTENT]))
        (verdict,) = verdicts([INTENT], delta)
        assert verdict.passed == {"p50": False, "p95": True, "p99": False}
        assert (verdict.slowest_node, verdict.provider, verdict.model) == ("intent", "aws.bedrock", "claude")
        assert verdict.slowest_node_mean_ms == 400.0

    def test_histogram_quantile_interpolates_like_prometheus(self):
        """Linear within the bucket holding the rank; the +Inf bucket answers its lower bound."""
        assert histogram_quantile(0.5, {100.0: 0, 200.0: 10, INF: 10}) == 150.0
        assert histogram_quantile(0.99, {100.0: 5, INF: 10}) == 100.0
        assert histogram_quantile(0.5, {100.0: 0, INF: 0}) is None


class TestProfile:
    def test_stages_parse_and_ramp_linearly(self):
        """k6 stages: linear from the previous target, None after the last stage."""
        stages = parse_stages("10s:4,1m:8,10s:0")
        assert stages == (Stage(10, 4), Stage(60, 8), Stage(10, 0))
        assert [users_at(stages, t) for t in (0, 5, 10, 40, 70, 75, 80)] == [0, 2, 4, 6, 8, 4, None]
        assert sum(stage.duration_s for stage in parse_stages(SEED_STAGES)) == 7 * 60
        assert parse_stages(DEFAULT_STAGES)

    @pytest.mark.parametrize("text", ["10:4", "10s", "s:4", "10s:-1", "0s:3", "10x:4"])
    def test_bad_stages_name_the_format(self, text):
        """A bad stage is refused with the expected format in the message."""
        with pytest.raises(ValueError, match="DURATION:USERS"):
            parse_stages(text)


def test_load_without_its_extra_names_it_in_one_line(monkeypatch, capsys):
    """Locust missing: `otel-llm load` exits 2 with one line naming the 'load' extra, before any request."""
    monkeypatch.setitem(sys.modules, "locust", None)
    monkeypatch.delitem(sys.modules, "otel_llm.load.scenario", raising=False)
    assert main(["load", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the 'load' extra" in err


def by_percentile(values) -> dict:
    return dict(zip(PERCENTILES, values, strict=True))


class TestReport:
    def _report(self):
        failing = Verdict(
            "intent_classification",
            "Intent classification",
            "aws.bedrock:claude",
            10,
            by_percentile((420.0, 480.0, 495.0)),
            by_percentile((100.0, 300.0, 500.0)),
            by_percentile((0, 0, 10)),
            by_percentile((False, False, True)),
            False,
            "intent",
            421.0,
            "aws.bedrock",
            "claude",
        )
        passing = Verdict(
            "retrieval",
            "RAG retrieval",
            "",
            10,
            by_percentile((2.5, 4.8, 4.9)),
            by_percentile((500.0, 1000.0, 2000.0)),
            by_percentile((10, 10, 10)),
            by_percentile((True, True, True)),
            True,
        )
        return LoadReport("http://app", "2s:1", 10.0, 20, 1, {"waste": 19}, False, [failing, passing])

    def test_table_marks_failures_and_names_the_bottleneck(self):
        """The failing row: '!' on the percentiles over target, FAIL, the node and the provider/model under
        it; the row without an experiment says so; an unsettled run warns."""
        lines = render_table(self._report()).splitlines()
        assert "20 requests (2.0/s)  1 failed checks" in lines[0] and lines[1].startswith("warning:")
        failing = next(line for line in lines if line.startswith("Intent classification"))
        assert "420 (100) !" in failing and "495 (500) " in failing and "FAIL" in failing
        assert failing.endswith("node intent (421 ms mean), aws.bedrock/claude")
        assert "(no experiment)" in next(line for line in lines if line.startswith("RAG retrieval"))

    def test_json_and_chart(self, tmp_path):
        """--json carries ok=false and every verdict; --chart writes a PNG."""
        report = self._report()
        data = report.to_dict()
        assert data["ok"] is False and [v["slo"] for v in data["verdicts"]] == [
            "intent_classification",
            "retrieval",
        ]
        assert write_chart(report, tmp_path / "slo.png").read_bytes()[:4] == b"\x89PNG"


def test_gateway_slow_trace_threshold_is_the_lowest_whole_response_p95_target():
    """collector/gateway.yaml keeps a trace as slow past the lowest whole-response P95 target of slos.yaml by
    default, so a trace breaking any intent's target is kept (docs/deploy.md)."""
    gateway = yaml.safe_load(paths.COLLECTOR_GATEWAY_OVERLAY.read_text())
    slow = next(policy for policy in gateway["processors"]["tail_sampling"]["policies"]
                if policy["name"] == "slow")
    default = re.fullmatch(r"\$\{env:OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS:-(\d+)\}",
                           slow["latency"]["threshold_ms"])
    targets = [slo.targets_ms["p95"] for slo in SLOS if slo.name.startswith("response_")]
    assert default and targets and int(default[1]) == min(targets)
