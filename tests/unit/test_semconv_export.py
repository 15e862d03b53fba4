"""otel_llm.semconv_export: the llm_rollup processor's data file and the Python/Go equivalence corpus (the Go
side of the corpus runs in collector/llmrollupprocessor's `go test`)."""

from __future__ import annotations

import json

import pytest

from otel_llm import semconv, semconv_export


def _cases() -> list[dict]:
    return json.loads(semconv_export.CORPUS_FILE.read_text())["cases"]


class TestRulesFile:
    def test_committed_rules_equal_the_generated_ones(self):
        """collector/llmrollupprocessor/rules.json is what the generator writes from semconv now."""
        assert json.loads(semconv_export.RULES_FILE.read_text()) == semconv_export.rules()

    def test_rules_carry_every_alias_and_model_rule(self):
        """Each alias of semconv's provider table and each model rule is in the data file."""
        rules = semconv_export.rules()
        for canonical, aliases in semconv.PROVIDER_ALIASES.items():
            assert all(rules["provider_aliases"][alias] == canonical for alias in aliases)
        assert [(r["pattern"], r["provider"]) for r in rules["model_rules"]] == list(semconv.MODEL_RULES)

    def test_check_reports_a_stale_file(self, tmp_path, monkeypatch, capsys):
        """--check exits 1 and names the file when the data file differs from the generated one."""
        stale = tmp_path / "rules.json"
        stale.write_text("{}\n")
        monkeypatch.setattr(semconv_export, "RULES_FILE", stale)
        assert semconv_export.main(["--check"]) == 1
        assert f"{stale}: STALE" in capsys.readouterr().out


class TestCorpus:
    def test_corpus_covers_every_alias(self):
        """Every provider alias of semconv is sent through the corpus at least once."""
        values = {
            str(case["attributes"].get(key)).lower()
            for case in _cases()
            for key in (semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_SYSTEM)
        }
        assert {alias for aliases in semconv.PROVIDER_ALIASES.values() for alias in aliases} <= values

    @pytest.mark.parametrize("case", _cases(), ids=lambda case: case["name"])
    def test_python_gives_the_corpus_answer(self, case):
        """Python's semconv answers each corpus case as recorded (Go's test asserts the same answers)."""
        assert semconv_export.answers(case["attributes"]) == case["expected"]
