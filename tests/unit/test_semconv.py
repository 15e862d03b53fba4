"""The attribute vocabulary: provider aliases, model-id rules, LLM-span detection, docs in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_llm import semconv

ATTRIBUTES_DOC = Path(__file__).resolve().parents[2] / "docs" / "attributes.md"


class TestNormalizeProvider:
    @pytest.mark.parametrize("value,expected", [
        ("amazon_bedrock", "aws.bedrock"), ("Bedrock", "aws.bedrock"), ("OpenAI", "openai"),
        ("azure_openai", "azure.ai.openai"), ("vertexai", "gcp.vertex_ai"), ("google_genai", "gcp.gemini"),
        ("Mistral AI", "mistral_ai"), ("aws-bedrock", "aws.bedrock"),
    ])
    def test_aliases_map_to_canonical(self, value, expected):
        """Every alias spelling gives the semconv well-known value."""
        assert semconv.normalize_provider(value) == expected

    def test_unknown_passes_through_normalised_and_capped(self):
        """Unknown providers are lower-cased, cleaned to [a-z0-9_.] and capped."""
        assert semconv.normalize_provider("  My Cloud!  ") == "my_cloud"
        assert semconv.normalize_provider("Z" * 1000) == "z" * semconv.MAX_PROVIDER_LENGTH

    @pytest.mark.parametrize("value", [None, "", "   ", (), "!!!"])
    def test_empty_values_give_none(self, value):
        """Missing, empty or all-punctuation values are no provider."""
        assert semconv.normalize_provider(value) is None

    def test_non_string_values(self):
        """Sequences give their first item; bytes are decoded; numbers become text."""
        assert semconv.normalize_provider(("openai", "x")) == "openai"
        assert semconv.normalize_provider(b"bedrock") == "aws.bedrock"
        assert semconv.normalize_provider(42) == "42"


class TestModelRules:
    @pytest.mark.parametrize("model,provider", [
        ("anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock"),
        ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock"),
        ("arn:aws:bedrock:us-east-1:123:inference-profile/x", "aws.bedrock"),
        ("meta.llama3-8b-instruct-v1:0", "aws.bedrock"),
        ("gpt-4o-mini", "openai"), ("o1", "openai"), ("text-embedding-3-small", "openai"),
        ("claude-3-5-sonnet-latest", "anthropic"), ("gemini-1.5-pro", "gcp.gemini"),
        ("mistral-large-latest", "mistral_ai"), ("command-r", "cohere"), ("grok-2", "x_ai"),
        ("deepseek-chat", "deepseek"),
    ])
    def test_model_implies_provider(self, model, provider):
        """Model ids imply their provider; Bedrock-shaped ids are Bedrock whatever vendor they name."""
        assert semconv.provider_from_model(model) == provider

    @pytest.mark.parametrize("model", ["my-finetune", None, "", 12])
    def test_unknown_model_implies_nothing(self, model):
        """Unrecognised or missing model ids imply no provider."""
        assert semconv.provider_from_model(model) is None

    def test_model_capped_case_kept(self):
        """Model ids keep their case and are capped."""
        assert semconv.normalize_model(" GPT-4o ") == "GPT-4o"
        assert semconv.normalize_model("m" * 500) == "m" * semconv.MAX_MODEL_LENGTH


class TestIsLLMSpan:
    @pytest.mark.parametrize("attributes,expected", [
        ({"langsmith.span.kind": "llm", "gen_ai.operation.name": "chat"}, True),
        ({"langsmith.span.kind": "chain", "gen_ai.system": "langchain", "gen_ai.operation.name": "chain"},
         False),
        ({"langsmith.span.kind": "tool", "gen_ai.operation.name": "execute_tool"}, False),
        ({"gen_ai.operation.name": "chat"}, True),
        ({"gen_ai.operation.name": "embeddings"}, True),
        ({"gen_ai.operation.name": "invoke_agent"}, False),
        ({"llm.request.type": "chat", "gen_ai.system": "openai"}, True),
        ({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}, True),
        ({"gen_ai.system": "langchain", "gen_ai.request.model": "gpt-4o"}, False),
        ({"http.method": "POST"}, False),
        ({}, False),
    ])
    def test_only_model_calls_are_llm_spans(self, attributes, expected):
        """LangSmith kind decides, then semconv operation, OpenLLMetry request type, then system + model."""
        assert semconv.is_llm_span(attributes) is expected


class TestResolveProvider:
    def test_provider_name_wins(self):
        """An explicit gen_ai.provider.name is used as set (normalised)."""
        assert semconv.resolve_provider({"gen_ai.provider.name": "Azure", "gen_ai.system": "openai"}) == (
            "azure.ai.openai")

    def test_ls_provider_beats_langsmith_system_guess(self):
        """langsmith's gen_ai.system is guessed from the model name; ls_provider is the model's own word."""
        attributes = {"langsmith.metadata.ls_provider": "amazon_bedrock", "gen_ai.system": "anthropic",
                      "gen_ai.request.model": "claude-3-haiku"}
        assert semconv.resolve_provider(attributes) == "aws.bedrock"

    def test_bedrock_model_id_beats_system(self):
        """Without ls_provider, a Bedrock-shaped model id overrides gen_ai.system=anthropic."""
        attributes = {"gen_ai.system": "anthropic",
                      "gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0"}
        assert semconv.resolve_provider(attributes) == "aws.bedrock"

    def test_framework_system_is_ignored(self):
        """gen_ai.system=langchain is not a provider; the model decides."""
        attributes = {"gen_ai.system": "langchain", "gen_ai.request.model": "gpt-4o"}
        assert semconv.resolve_provider(attributes) == "openai"

    def test_nothing_known(self):
        """No provider, system or recognisable model: None (callers write 'unknown')."""
        assert semconv.resolve_provider({"gen_ai.request.model": "mystery"}) is None

    def test_model_precedence(self):
        """Request model, then ls_model_name, then response model."""
        attributes = {"gen_ai.response.model": "r", "langsmith.metadata.ls_model_name": "l"}
        assert semconv.resolve_model(attributes) == "l"
        assert semconv.resolve_model({"gen_ai.response.model": "r"}) == "r"


class TestResolveTokens:
    def test_semconv_then_deprecated_names(self):
        """input/output tokens, else the deprecated prompt/completion names."""
        deprecated = {"gen_ai.usage.prompt_tokens": 4, "gen_ai.usage.completion_tokens": 2}
        assert semconv.resolve_tokens(deprecated) == (4, 2)
        both = {"gen_ai.usage.input_tokens": 1, "gen_ai.usage.prompt_tokens": 4}
        assert semconv.resolve_tokens(both) == (1, None)

    @pytest.mark.parametrize("value,expected", [("7", 7), (3.9, 3), (-1, None), (True, None), ("x", None),
                                                (float("inf"), None), (float("nan"), None), (None, None)])
    def test_bad_token_values(self, value, expected):
        """Token counts must be non-negative integers (or their text); anything else is unknown."""
        assert semconv.resolve_tokens({"gen_ai.usage.input_tokens": value})[0] == expected


class TestDocsInSync:
    def doc(self) -> str:
        return ATTRIBUTES_DOC.read_text()

    def test_provider_table_matches(self):
        """docs/attributes.md lists every canonical provider with exactly its aliases."""
        doc = self.doc()
        for canonical, aliases in semconv.PROVIDER_ALIASES.items():
            row = f"| `{canonical}` | " + ", ".join(f"`{alias}`" for alias in aliases) + " |"
            assert row in doc, f"docs/attributes.md needs the row:\n{row}"

    def test_model_rules_match(self):
        """docs/attributes.md shows every model-id rule, in order, with its provider."""
        doc = self.doc()
        positions = []
        for pattern, provider in semconv.MODEL_RULES:
            escaped = pattern.replace("|", "\\|")  # a bare | would split the Markdown table cell
            row = f"| `{escaped}` | `{provider}` |"
            assert row in doc, f"docs/attributes.md needs the row:\n{row}"
            positions.append(doc.index(row))
        assert positions == sorted(positions), "model rules must be listed in the order they are tried"

    def test_every_written_name_is_documented(self):
        """Every name we write (GenAI, llm.*) appears in docs/attributes.md."""
        doc = self.doc()
        prefixes = ("ROLLUP_", "GEN_AI_", "LANGSMITH_", "EXPERIMENT_")
        singles = ("LANGGRAPH_NODE", "ERROR_TYPE", "SESSION_ID")
        names = [value for key, value in vars(semconv).items()
                 if isinstance(value, str) and (key.startswith(prefixes) or key in singles)
                 # prefixes such as "langsmith.metadata." are not names
                 and "." in value and not value.endswith(".")]
        missing = [name for name in names if f"`{name}`" not in doc]
        assert not missing, f"undocumented attributes: {missing}"
