"""otel_llm.sampling: the gateway's slow-trace policies are generated from the SLO file and current in
collector/gateway.yaml (their behaviour in the real collector: tests/integration/test_gateway_topology.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from otel_llm import ottl, sampling, semconv
from otel_llm.load.slo import INTENT_LABEL, load_slos
from otel_llm.stack import paths

SLOS = load_slos()


def _policies() -> dict[str, dict]:
    config = yaml.safe_load(paths.COLLECTOR_GATEWAY_OVERLAY.read_text())
    return {policy["name"]: policy for policy in config["processors"]["tail_sampling"]["policies"]}


def _sub(policy: dict, name: str) -> dict:
    return next(sub for sub in policy["and"]["and_sub_policy"] if sub["name"] == name)


class TestGatewayConfigIsCurrent:
    def test_check_reports_the_file_current(self):
        """`python -m otel_llm.sampling --check` passes on the committed gateway.yaml."""
        assert sampling.main(["--check"]) == 0

    def test_each_intent_is_slow_above_its_whole_response_p95(self):
        """slow-<intent> keeps a trace of that intent above exactly the P95 target slos.yaml gives it."""
        policies = _policies()
        whole_response = [slo for slo in SLOS if INTENT_LABEL in slo.matchers]
        assert len(whole_response) >= 2
        for slo in whole_response:
            intent = slo.matchers[INTENT_LABEL]
            policy = policies[f"slow-{intent}"]
            assert _sub(policy, "intent")["string_attribute"] == {
                "key": semconv.LANGSMITH_INTENT, "values": [intent]}
            assert _sub(policy, "slower")["latency"]["threshold_ms"] == slo.targets_ms["p95"]

    def test_other_intents_fall_back_to_the_lowest_target(self):
        """`slow` covers every trace without a known intent, above OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS
        defaulting to the lowest whole-response P95."""
        policy = _policies()["slow"]
        known = _sub(policy, "other-intent")["not"]["not_sub_policy"]["string_attribute"]["values"]
        targets = sampling.intent_targets(SLOS)
        assert known == list(targets)
        assert _sub(policy, "slower")["latency"]["threshold_ms"] == \
            f"${{env:OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS:-{min(targets.values())}}}"


class TestGeneration:
    def test_a_new_intent_gets_its_own_policy_and_leaves_the_fallback(self):
        """A whole-response SLO of a new intent yields slow-<intent> and joins the fallback's exclusions."""
        general = next(slo for slo in SLOS if slo.matchers.get(INTENT_LABEL) == "general")
        billing = dataclasses.replace(general, name="response_billing",
                                      matchers={**general.matchers, INTENT_LABEL: "billing"},
                                      targets_ms={**general.targets_ms, "p95": 2000.0})
        policies = {policy["name"]: policy for policy in sampling.slow_policies((*SLOS, billing))}
        assert _sub(policies["slow-billing"], "slower")["latency"]["threshold_ms"] == 2000
        fallback = policies["slow"]
        known = _sub(fallback, "other-intent")["not"]["not_sub_policy"]["string_attribute"]["values"]
        assert "billing" in known
        assert _sub(fallback, "slower")["latency"]["threshold_ms"].endswith(":-2000}")

    def test_node_slos_are_not_whole_responses(self):
        """Only whole-response rows count: node SLOs (intent classification, retrieval) make no policy."""
        assert set(sampling.intent_targets(SLOS)) == {
            slo.matchers[INTENT_LABEL] for slo in SLOS
            if slo.matchers.get("gen_ai_operation_name") == "invoke_workflow"}

    def test_no_intent_slo_is_an_error(self):
        """An SLO file without a whole-response row per intent is rejected, the missing matcher named."""
        with pytest.raises(ValueError, match=INTENT_LABEL):
            sampling.slow_policies([slo for slo in SLOS if INTENT_LABEL not in slo.matchers])

    def test_drift_is_detected_and_rewritten_in_place(self, tmp_path):
        """A hand-edited threshold makes the file stale; --write's rewrite restores the generated block."""
        gateway = tmp_path / "gateway.yaml"
        text = paths.COLLECTOR_GATEWAY_OVERLAY.read_text()
        gateway.write_text(text.replace("threshold_ms: 5000", "threshold_ms: 4000", 1))
        assert not ottl.is_current(gateway, sampling.BLOCKS)
        assert ottl.rewrite(gateway, sampling.BLOCKS) is True
        assert gateway.read_text() == text
