"""otel_llm.ottl: the collector's GenAI transform statements, generated from semconv (behaviour is proven by
tests/integration/test_configs.py running them in the real collector)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from otel_llm import ottl, semconv
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

    def test_check_reports_the_file_current(self):
        """`python -m otel_llm.ottl --check` passes on the committed config."""
        assert ottl.main(["--check"]) == 0


class TestGeneratedStatements:
    def test_every_model_rule_appears_once_in_reverse_order(self):
        """The first rule is the last write: the first matching rule wins, as in provider_from_model."""
        patterns = [pattern.removeprefix("(?i)") for statement in ottl.genai_statements()
                    if statement.startswith(f'set(cache["{ottl.INFERRED}"]')
                    for pattern in _literals(statement)[3:]]
        assert patterns == [pattern for pattern, _ in reversed(semconv.MODEL_RULES)]

    def test_alias_map_holds_every_alias(self):
        """The alias map literal maps every alias of semconv.PROVIDER_ALIASES to its canonical provider."""
        statement = next(s for s in ottl.genai_statements() if s.startswith(f'set(cache["{ottl.ALIASES}"]'))
        literals = _literals(statement)[1:]
        mapping = dict(zip(literals[::2], literals[1::2], strict=True))
        expected = {alias: canonical for canonical, aliases in semconv.PROVIDER_ALIASES.items()
                    for alias in aliases}
        assert mapping == expected

    def test_sources_are_written_lowest_precedence_first(self):
        """Provider sources are written in the order system, ls_provider, provider name; then the span."""
        sources = [statement for statement in ottl.genai_statements()
                   if statement.startswith('set(cache["candidate"], span.attributes[')]
        assert [_literals(statement)[1] for statement in sources] == [
            semconv.GEN_AI_SYSTEM, semconv.LANGSMITH_LS_PROVIDER, semconv.GEN_AI_PROVIDER_NAME]
        written = [_literals(statement)[0] for statement in ottl.genai_statements()[-2:]]
        assert written == [semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL]
        assert all(f'"{semconv.UNKNOWN}"' in statement for statement in ottl.genai_statements()[-2:])

    def test_bedrock_model_ids_beat_gen_ai_system(self):
        """The system is taken only when the model id is not Bedrock's (resolve_provider, step 3)."""
        system_write = next(s for s in ottl.genai_statements()
                            if s.startswith('set(cache["provider"], cache["candidate"])') and "IsMatch" in s)
        assert f'cache["{ottl.INFERRED}"] != "{ottl.BEDROCK}"' in system_write
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
        config.write_text(f"a: 1\nb:\n  {ottl.BEGIN_MARKER}\n  - stale\n  {ottl.END_MARKER}\nc: 2\n")
        assert ottl.rewrite(config) is True
        text = config.read_text()
        assert text.startswith("a: 1\nb:\n") and text.endswith("c: 2\n") and "stale" not in text
        assert yaml.safe_load(text)["b"] == ottl.transform_config()
        assert ottl.rewrite(config) is False and ottl.is_current(config)

    def test_file_without_markers_is_an_error(self, tmp_path):
        """A config without the markers is rejected with the markers named."""
        config = tmp_path / "config.yaml"
        config.write_text("processors: {}\n")
        with pytest.raises(ValueError, match="BEGIN GENERATED"):
            ottl.rewrite(config)
