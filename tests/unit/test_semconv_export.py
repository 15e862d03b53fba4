"""otel_llm.semconv_export: the llm_rollup processor's data file and the Python/Go equivalence corpus (the Go
side of the corpus runs in collector/llmrollupprocessor's `go test`)."""

from __future__ import annotations

import json
import types

import pytest

from otel_llm import semconv, semconv_export


def _cases() -> list[dict]:
    return json.loads(semconv_export.CORPUS_FILE.read_text())["cases"]


def _globals_read(*functions: types.FunctionType) -> set[str]:
    """The module-level constants of semconv the functions read, following calls into semconv's functions."""
    constants: set[str] = set()
    followed: set[str] = set()
    todo = [function.__code__ for function in functions]
    while todo:
        code = todo.pop()
        todo.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
        for name in code.co_names:
            value = getattr(semconv, name, None)
            if isinstance(value, types.FunctionType) and value.__module__ == semconv.__name__:
                if name not in followed:
                    followed.add(name)
                    todo.append(value.__code__)
            elif name.lstrip("_").isupper() and hasattr(semconv, name):
                constants.add(name)
    return constants


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

    def test_rules_carry_every_table_the_resolvers_read(self):
        """Every semconv table the resolvers read (found in their code, callees included) is in rules.json, as
        the data Python holds; every attribute name they read is among its names."""
        read = _globals_read(semconv.is_llm_span, semconv.resolve_model, semconv.resolve_provider,
                             semconv.resolve_token_counts, semconv_export.normalize.langgraph_node)
        tables = {name for name in read if not isinstance(getattr(semconv, name, None), str)}
        names = {name for name in read if isinstance(getattr(semconv, name, None), str)}
        assert {"_COMPILED_HOST_RULES", "MODEL_KEYS", "SYSTEM_KEYS", "TOKEN_KEYS",
                "OPENINFERENCE_LLM_KINDS"} <= tables
        assert tables <= set(semconv_export.TABLES), "export these in semconv_export.TABLES"
        rules = json.loads(semconv_export.RULES_FILE.read_text())
        for name, key in semconv_export.TABLES.items():
            assert rules[key] == semconv_export._as_json(getattr(semconv, name)), name
        exported_names = set(rules["names"].values())
        assert {getattr(semconv, name) for name in names} <= exported_names

    def test_rules_carry_every_rollup_token_attribute(self):
        """Each token kind has its keys and the llm.rollup.* attribute Python's roll-up sums it under."""
        rules = semconv_export.rules()
        assert set(rules["token_keys"]) == set(rules["rollup_token_attributes"]) == set(semconv.TOKEN_KEYS)
        assert rules["rollup_token_attributes"]["cache_read"] == semconv.ROLLUP_CACHE_READ_INPUT_TOKENS
        assert rules["rollup_token_attributes"]["reasoning"] == semconv.ROLLUP_REASONING_OUTPUT_TOKENS

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
