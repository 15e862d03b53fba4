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


class TestOtherInstrumentations:
    """OpenInference, OpenLLMetry, botocore and Azure OpenAI, as their real packages write them (the values
    below are copied from spans of the versions in docs/attributes.md)."""

    OPENINFERENCE_AZURE = {
        "openinference.span.kind": "LLM", "llm.provider": "azure", "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18", "llm.token_count.prompt": 12,
        "llm.token_count.completion": 5, "llm.token_count.prompt_details.cache_read": 4,
        "llm.token_count.completion_details.reasoning": 2,
    }
    OPENAI_V2_AZURE = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                       "gen_ai.request.model": "gpt-4o-mini", "server.address": "interop.openai.azure.com"}

    def test_openinference_llm_span(self):
        """openinference.span.kind=LLM is an LLM span: provider from llm.provider, model from llm.model_name,
        tokens and their details from llm.token_count.*."""
        attributes = self.OPENINFERENCE_AZURE
        assert semconv.is_llm_span(attributes)
        assert semconv.resolve_model(attributes) == "gpt-4o-mini-2024-07-18"
        assert semconv.resolve_provider(attributes) == "azure.ai.openai"
        assert semconv.resolve_token_counts(attributes) == {
            "input": 12, "output": 5, "cache_read": 4, "reasoning": 2}

    @pytest.mark.parametrize("kind", ["CHAIN", "AGENT", "TOOL", "RETRIEVER"])
    def test_openinference_non_model_kinds(self, kind):
        """OpenInference's chain, agent, tool and retriever spans are not model calls."""
        assert not semconv.is_llm_span({"openinference.span.kind": kind, "llm.model_name": "gpt-4o"})

    @pytest.mark.parametrize("address", [
        "interop.openai.azure.com", "https://interop.openai.azure.com/openai/", "X.OPENAI.AZURE.COM:443"])
    def test_azure_host_beats_the_written_provider(self, address):
        """openai-v2 says openai for AzureOpenAI; the Azure host (a host or OpenLLMetry's URL) decides."""
        attributes = {**self.OPENAI_V2_AZURE, "server.address": address}
        assert semconv.resolve_provider(attributes) == "azure.ai.openai"

    @pytest.mark.parametrize("address,provider", [
        ("127.0.0.1", None), ("api.openai.com", None), ("notopenai.azure.com", None),
        ("openai.azure.com.evil.example", None), ("bedrock-runtime.us-east-1.amazonaws.com", "aws.bedrock"),
        ("my-hub.services.ai.azure.com", "azure.ai.inference"), (None, None), (443, None)])
    def test_host_rules(self, address, provider):
        """Only the provider's own domains match; a look-alike or a non-text value does not."""
        assert semconv.provider_from_host(address) == provider

    def test_bedrock_cache_tokens_under_the_old_name(self):
        """botocore 0.66b2 writes cache_creation.input_tokens: read as the cache-write count."""
        counts = semconv.resolve_token_counts({"gen_ai.usage.cache_read.input_tokens": 4,
                                               "gen_ai.usage.cache_creation.input_tokens": 3})
        assert counts == {"cache_read": 4, "cache_write": 3}


class TestMetricProvider:
    """The provider label an instrumentation's own metric point gets (None: keep it as recorded)."""

    def test_deprecated_system_is_translated(self):
        """botocore's Bedrock points carry gen_ai.system only: it becomes the provider."""
        assert semconv.metric_provider({"gen_ai.system": "aws.bedrock"}) == "aws.bedrock"
        assert semconv.metric_provider({"gen_ai.system": "AWS_Bedrock"}) == "aws.bedrock"

    def test_azure_host_overrides(self):
        """openai-v2's Azure points say openai; the host makes them azure.ai.openai."""
        assert semconv.metric_provider({"gen_ai.provider.name": "openai",
                                        "server.address": "r.openai.azure.com"}) == "azure.ai.openai"

    def test_points_already_right_are_left_alone(self):
        """A provider that is already set (and no host rule) is not touched; nothing to say gives None."""
        assert semconv.metric_provider({"gen_ai.provider.name": "openai", "gen_ai.system": "x"}) is None
        assert semconv.metric_provider({"gen_ai.provider.name": "azure.ai.openai",
                                        "server.address": "r.openai.azure.com"}) is None
        assert semconv.metric_provider({"error.type": "NotFoundError"}) is None


class TestBadInput:
    """Instrumentations that write conflicting or ill-typed attributes: defined answers, never an error."""

    def test_conflicting_provider_attributes_follow_the_precedence(self):
        """gen_ai.provider.name beats gen_ai.system and llm.provider; the host beats all three."""
        conflicting = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                       "gen_ai.system": "anthropic", "llm.provider": "azure",
                       "gen_ai.request.model": "gpt-4o"}
        assert semconv.resolve_provider(conflicting) == "openai"
        assert semconv.resolve_provider({**conflicting, "server.address": "x.openai.azure.com"}) == (
            "azure.ai.openai")

    @pytest.mark.parametrize("value,expected", [
        (42, "42"), (["gpt-4o", "x"], "gpt-4o"), (b"gpt-4o", "gpt-4o"), ("  ", None), ([], None)])
    def test_non_string_model_name(self, value, expected):
        """A non-string llm.model_name is read as its text (a list as its first item); empty is no model."""
        assert semconv.resolve_model({"openinference.span.kind": "LLM", "llm.model_name": value}) == expected

    @pytest.mark.parametrize("value,expected", [("12", 12), ("-3", None), (-3, None), ("1e3", None),
                                                (["12"], None), (False, None)])
    def test_token_counts_as_strings_or_negative(self, value, expected):
        """Token counts as text are read; negative, boolean, list or non-integer text counts are absent, and
        a bad count under one name falls back to the next name."""
        counts = semconv.resolve_token_counts({"llm.token_count.prompt": value})
        assert counts.get("input") == expected
        fallback = semconv.resolve_token_counts({"gen_ai.usage.input_tokens": value,
                                                 "llm.token_count.prompt": 7})
        assert fallback["input"] == (expected if expected is not None else 7)


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

    def test_host_rules_match(self):
        """docs/attributes.md shows every server-address rule, in order, with its provider."""
        doc = self.doc()
        rows = [f"| `{pattern.replace('|', chr(92) + '|')}` | `{provider}` |"
                for pattern, provider in semconv.HOST_RULES]
        assert all(row in doc for row in rows), rows
        assert [doc.index(row) for row in rows] == sorted(doc.index(row) for row in rows)

    def test_every_written_name_is_documented(self):
        """Every name we write (GenAI, llm.*) appears in docs/attributes.md."""
        doc = self.doc()
        prefixes = ("ROLLUP_", "GEN_AI_", "LANGSMITH_", "EXPERIMENT_", "OPENINFERENCE_", "METRIC_")
        singles = ("LANGGRAPH_NODE", "ERROR_TYPE", "SESSION_ID", "TOKEN_DETAIL",
                   "OPENLLMETRY_REASONING_TOKENS")
        names = [value for key, value in vars(semconv).items()
                 if isinstance(value, str) and (key.startswith(prefixes) or key in singles)
                 # prefixes such as "langsmith.metadata." are not names
                 and "." in value and not value.endswith(".")]
        missing = [name for name in names if f"`{name}`" not in doc]
        assert not missing, f"undocumented attributes: {missing}"
