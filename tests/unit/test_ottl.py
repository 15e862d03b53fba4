"""otel_llm.ottl: the collector's GenAI transform statements, generated from semconv (behaviour is proven by
tests/integration/test_configs.py running them in the real collector)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from otel_llm import ottl, redaction, semconv
from otel_llm.stack import paths


def _transform_groups() -> list[dict]:
    config = yaml.safe_load(paths.COLLECTOR_CONFIG.read_text())
    return config["processors"][ottl.TRANSFORM_PROCESSOR]["trace_statements"]


def _literals(text: str) -> list[str]:
    """The OTTL string literals of a statement, unquoted."""
    return [json.loads(literal) for literal in re.findall(r'"(?:\\.|[^"\\])*"', text)]


class TestCollectorConfigIsCurrent:
    def test_yaml_statements_equal_the_generated_ones(self):
        """collector/config.yaml holds exactly the statements and condition generated from semconv now."""
        assert _transform_groups() == ottl.transform_config()

    def test_redaction_statements_equal_the_rule_table_and_run_in_both_trace_pipelines(self):
        """transform/redact holds what otel_llm.redaction renders now, ahead of the GenAI transform."""
        config = yaml.safe_load(paths.COLLECTOR_CONFIG.read_text())
        assert config["processors"][redaction.TRANSFORM_PROCESSOR]["trace_statements"] == \
            redaction.transform_config()
        for name in ("traces", "traces/langsmith"):
            processors = config["service"]["pipelines"][name]["processors"]
            position = processors.index
            assert position(redaction.TRANSFORM_PROCESSOR) < position(ottl.TRANSFORM_PROCESSOR)

    def test_check_reports_the_file_current(self):
        """`python -m otel_llm.ottl --check` passes on the committed config."""
        assert ottl.main(["--check"]) == 0


class TestGeneratedStatements:
    def test_every_model_rule_appears_once_in_reverse_order(self):
        """The first rule is the last write: the first matching rule wins, as in provider_from_model."""
        patterns = [literal.removeprefix("(?i)") for statement in ottl.genai_statements()
                    if statement.startswith(f'set(cache["{ottl.INFERRED}"]')
                    for literal in _literals(statement) if literal.startswith("(?i)")]
        assert patterns == [pattern for pattern, _ in reversed(semconv.MODEL_RULES)]

    def test_alias_map_holds_every_alias(self):
        """The alias map literal maps every alias of semconv.PROVIDER_ALIASES to its canonical provider."""
        builds = [s for s in ottl.genai_statements() if s.startswith(f'set(cache["{ottl.ALIASES}"]')]
        assert builds and all(f'cache["{ottl.ALIASES}"] == nil' in build for build in builds)  # once per span
        literal = builds[0][builds[0].index("{"):builds[0].rindex("}") + 1]
        expected = {alias: canonical for canonical, aliases in semconv.PROVIDER_ALIASES.items()
                    for alias in aliases}
        assert json.loads(literal) == expected

    def test_sources_are_tried_by_falling_precedence_while_undecided(self):
        """Provider name, then ls_provider, then gen_ai.system, llm.provider, llm.system (SYSTEM_KEYS), each
        only while no provider is decided."""
        sources = [statement for statement in ottl.genai_statements()
                   if statement.startswith('set(cache["candidate"], span.attributes[')]
        assert [_literals(statement)[1] for statement in sources] == [
            semconv.GEN_AI_PROVIDER_NAME, semconv.LANGSMITH_LS_PROVIDER, *semconv.SYSTEM_KEYS]
        assert all(f'cache["{ottl.PROVIDER}"] == nil' in statement for statement in sources)
        written = [_literals(statement)[0] for statement in ottl.genai_statements()[-2:]]
        assert written == [semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL]
        assert all(f'"{semconv.UNKNOWN}"' in statement for statement in ottl.genai_statements()[-2:])

    def test_bedrock_model_ids_beat_gen_ai_system(self):
        """A Bedrock id decides the provider before gen_ai.system is looked at (resolve_provider, step 3)."""
        statements = ottl.genai_statements()
        bedrock = next(i for i, s in enumerate(statements) if s.endswith(f'== "{ottl.BEDROCK}"'))
        system_attribute = f'span.attributes["{semconv.GEN_AI_SYSTEM}"]'
        system = next(i for i, s in enumerate(statements) if system_attribute in s)
        assert bedrock < system
        assert semconv.provider_from_model("anthropic.claude-3-haiku-20240307-v1:0") == ottl.BEDROCK

    def test_regexes_survive_ottl_quoting(self):
        """Backslashes are doubled in the OTTL literal, so the collector's regex is semconv's pattern."""
        bedrock_rule = next(pattern for pattern, provider in semconv.MODEL_RULES if "\\." in pattern)
        assert any(("(?i)" + bedrock_rule) in _literals(s) for s in ottl.genai_statements())

    def test_condition_skips_spans_already_canonical(self):
        """Spans the SDK normalised (canonical provider set) skip the whole group."""
        condition = ottl.llm_span_condition()
        canonical_regex = next(literal for literal in _literals(condition) if "openai" in literal
                               and "aws\\.bedrock" in literal)
        assert all(re.fullmatch(canonical_regex, provider) for provider in semconv.PROVIDER_ALIASES)
        assert not re.fullmatch(canonical_regex, "bedrock")


class TestRewrite:
    def test_rewrite_replaces_only_the_marked_block(self, tmp_path):
        """--write regenerates the block in place, keeping its indent and everything around it."""
        config = tmp_path / "config.yaml"
        config.write_text(f"a: 1\nb:\n  {ottl.BEGIN_MARKER}\n  - stale\n  {ottl.END_MARKER}\nc: 2\n"
                          f"d:\n    {ottl.REDACT_BEGIN_MARKER}\n    - stale\n    {ottl.END_MARKER}\n")
        assert ottl.rewrite(config) is True
        text = config.read_text()
        assert text.startswith("a: 1\nb:\n") and "c: 2\n" in text and "stale" not in text
        assert yaml.safe_load(text)["b"] == ottl.transform_config()
        assert yaml.safe_load(text)["d"] == redaction.transform_config()
        assert ottl.rewrite(config) is False and ottl.is_current(config)

    def test_file_without_markers_is_an_error(self, tmp_path):
        """A config without the markers is rejected with the markers named."""
        config = tmp_path / "config.yaml"
        config.write_text("processors: {}\n")
        with pytest.raises(ValueError, match="BEGIN GENERATED"):
            ottl.rewrite(config)
