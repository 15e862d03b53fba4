"""The demo's offline chat models: presented as real providers, streamed token by token, with usage."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler

from otel_llm import settings
from otel_llm.demo.models import (
    DEFAULT_LATENCY_MS,
    FAIL_WORD_ENV,
    FALLBACK_ENV,
    LATENCY_ENV,
    PROVIDER_MODELS,
    TTFT_ENV,
    SimulatedProviderError,
    chat_model,
    provider_variable,
)
from otel_llm.demo.services import COMPLETIONS_PATH


class TokenCollector(BaseCallbackHandler):
    def __init__(self):
        self.tokens = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


class AsyncTokenCollector(AsyncCallbackHandler):
    def __init__(self):
        self.tokens = []

    async def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


class TestPresentation:
    @pytest.mark.parametrize(
        ("provider", "ls_provider", "model", "llm_type"),
        [
            ("openai", "openai", "gpt-4o-mini", "openai-chat"),
            (
                "aws.bedrock",
                "amazon_bedrock",
                "anthropic.claude-3-haiku-20240307-v1:0",
                "amazon_bedrock_converse_chat",
            ),
            (
                "amazon_bedrock",
                "amazon_bedrock",
                "anthropic.claude-3-haiku-20240307-v1:0",
                "amazon_bedrock_converse_chat",
            ),
        ],
    )
    def test_looks_like_the_real_provider(self, provider, ls_provider, model, llm_type):
        """LangSmith params and the LangChain type are the real integration's; aliases resolve."""
        fake = chat_model(provider, latency_ms=0, ttft_ms=0)
        params = fake._get_ls_params()
        assert (params["ls_provider"], params["ls_model_name"], params["ls_model_type"]) == (
            ls_provider,
            model,
            "chat",
        )
        assert fake._llm_type == llm_type

    def test_model_override_keeps_the_provider(self):
        """An arm may name another model of the provider; the fake reports that model."""
        fake = chat_model("openai", model="gpt-4o", latency_ms=0)
        assert fake._get_ls_params()["ls_model_name"] == "gpt-4o"
        assert fake._get_ls_params()["ls_provider"] == "openai"

    @pytest.mark.parametrize("provider", ["nope", "", None])
    def test_unknown_provider_is_refused_with_the_accepted_names(self, provider):
        """A provider the demo has no fake for raises ValueError listing the accepted providers."""
        with pytest.raises(ValueError, match="openai"):
            chat_model(provider)

    @pytest.mark.parametrize("arguments", [{"latency_ms": -1}, {"ttft_ms": -5}, {"answer_words": 0}])
    def test_bad_arguments_are_refused(self, arguments):
        """Negative delays and empty answers raise ValueError."""
        with pytest.raises(ValueError):
            chat_model("openai", **arguments)


class TestAnswers:
    def test_invoke_returns_usage_and_the_model_name(self):
        """A call returns the answer with input/output token counts and the model in the response metadata."""
        message = chat_model("openai", latency_ms=0, answer_words=5).invoke("sort my plastic waste")
        assert len(message.content.split()) == 5
        assert message.usage_metadata["output_tokens"] == 5
        assert message.usage_metadata["input_tokens"] == 4
        assert message.response_metadata["model_name"] == "gpt-4o-mini"

    def test_answers_are_repeatable(self):
        """The same prompt to the same model gives the same answer."""
        model = chat_model("aws.bedrock", latency_ms=0)
        assert model.invoke("hello").content == model.invoke("hello").content

    def test_stream_yields_each_word_and_reports_each_token(self):
        """Streaming yields one chunk per word, calls on_llm_new_token for each, and sums to the answer."""
        collector = TokenCollector()
        model = chat_model("openai", latency_ms=0, ttft_ms=0, answer_words=6)
        chunks = list(model.stream("hi", config={"callbacks": [collector]}))
        text = "".join(chunk.content for chunk in chunks)
        assert len(text.split()) == 6
        assert "".join(collector.tokens) == text
        total = chunks[0]
        for chunk in chunks[1:]:
            total += chunk
        assert total.usage_metadata["output_tokens"] == 6

    def test_async_stream_matches_the_sync_stream(self):
        """The async stream gives the same tokens and callbacks as the sync one."""
        collector = AsyncTokenCollector()
        model = chat_model("aws.bedrock", latency_ms=0, ttft_ms=0)

        async def stream():
            return [chunk.content async for chunk in model.astream("hi", config={"callbacks": [collector]})]

        tokens = asyncio.run(stream())
        assert "".join(tokens) == "".join(chunk.content for chunk in model.stream("hi"))
        assert "".join(collector.tokens) == "".join(tokens)

    def test_first_token_waits_ttft_and_the_rest_spread_the_latency(self):
        """Delays: time to first token before the first chunk, the rest of the latency between chunks."""
        model = chat_model("openai", latency_ms=100, ttft_ms=30, answer_words=8)
        delays = [delay for delay, _ in model._chunks([])]
        assert delays[0] == pytest.approx(0.030)
        assert sum(delays) == pytest.approx(0.100)

    def test_ttft_above_latency_is_capped(self):
        """A time to first token longer than the latency is the whole latency."""
        delays = [delay for delay, _ in chat_model("openai", latency_ms=10, ttft_ms=50)._chunks([])]
        assert delays[0] == pytest.approx(0.010) and sum(delays) == pytest.approx(0.010)


class ProviderApi:
    """httpx transports recording each request to the fake provider API, answering with ``status``."""

    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, str, dict]] = []
        self.status = status

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(self.status, json={})

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://provider", transport=httpx.MockTransport(self._answer))

    def async_client(self) -> httpx.AsyncClient:
        async def answer(request):
            return self._answer(request)

        return httpx.AsyncClient(base_url="http://provider", transport=httpx.MockTransport(answer))


class TestProviderApiCall:
    def test_sync_calls_post_to_the_completions_api_once_per_call(self):
        """invoke and stream each POST {model, stream} to /v1/chat/completions before answering."""
        api = ProviderApi()
        model = chat_model("openai", latency_ms=0, ttft_ms=0, http_client=api.client())
        model.invoke("hi")
        list(model.stream("hi"))
        assert api.requests == [
            ("POST", COMPLETIONS_PATH, {"model": "gpt-4o-mini", "stream": False}),
            ("POST", COMPLETIONS_PATH, {"model": "gpt-4o-mini", "stream": True}),
        ]

    def test_async_calls_use_the_async_client(self):
        """ainvoke and astream POST through the async client; the sync client is not used for them."""
        api, unused = ProviderApi(), ProviderApi()
        model = chat_model(
            "aws.bedrock",
            latency_ms=0,
            ttft_ms=0,
            http_client=unused.client(),
            async_http_client=api.async_client(),
        )

        async def run():
            await model.ainvoke("hi")
            return [chunk async for chunk in model.astream("hi")]

        assert asyncio.run(run())
        assert [body["stream"] for _, _, body in api.requests] == [False, True]
        assert unused.requests == []

    def test_failing_api_call_fails_the_model_call(self):
        """An error status from the provider API raises, as a real SDK's would."""
        model = chat_model("openai", latency_ms=0, http_client=ProviderApi(status=503).client())
        with pytest.raises(httpx.HTTPStatusError):
            model.invoke("hi")


class TestSettings:
    def test_environment_sets_latency_and_ttft(self, monkeypatch):
        """OTEL_LLM_DEMO_LATENCY_MS / OTEL_LLM_DEMO_TTFT_MS are the defaults of every model built."""
        monkeypatch.setenv(LATENCY_ENV, "75")
        monkeypatch.setenv(TTFT_ENV, "25")
        model = chat_model("openai")
        assert (model.latency_ms, model.ttft_ms) == (75.0, 25.0)

    def test_provider_variable_overrides_the_shared_one(self, monkeypatch):
        """OTEL_LLM_DEMO_LATENCY_MS_AWS_BEDROCK applies to Bedrock only; others keep the shared value."""
        monkeypatch.setenv(LATENCY_ENV, "30")
        monkeypatch.setenv(provider_variable(LATENCY_ENV, "aws.bedrock"), "300")
        assert provider_variable(LATENCY_ENV, "aws.bedrock") == "OTEL_LLM_DEMO_LATENCY_MS_AWS_BEDROCK"
        assert chat_model("aws.bedrock").latency_ms == 300.0
        assert chat_model("openai").latency_ms == 30.0

    @pytest.mark.parametrize("raw", ["fast", "-3", "inf"])
    def test_bad_value_warns_once_naming_the_variable_and_uses_the_default(self, monkeypatch, caplog, raw):
        """An unparsable or negative value logs one warning naming the variable, then the default applies."""
        settings.reset_warnings()
        monkeypatch.setenv(LATENCY_ENV, raw)
        with caplog.at_level(logging.WARNING, logger="otel_llm.settings"):
            first, second = chat_model("openai"), chat_model("aws.bedrock")
        assert first.latency_ms == second.latency_ms == DEFAULT_LATENCY_MS
        warnings = [record for record in caplog.records if LATENCY_ENV in record.getMessage()]
        assert len(warnings) == 1

    def test_every_demo_provider_has_a_model(self):
        """Both providers of the demo are in the table, keyed by their canonical names."""
        assert set(PROVIDER_MODELS) == {"openai", "aws.bedrock"}


class TestFailureDrills:
    def test_fallback_variable_serves_the_provider_with_another(self, monkeypatch):
        """OTEL_LLM_DEMO_FALLBACK_AWS_BEDROCK=openai: Bedrock calls get OpenAI's model, OpenAI's are kept."""
        monkeypatch.setenv(provider_variable(FALLBACK_ENV, "aws.bedrock"), "openai")
        served = chat_model("aws.bedrock", model="anthropic.claude-3-haiku-20240307-v1:0")
        assert (served.ls_provider, served.model_name) == ("openai", "gpt-4o-mini")
        assert chat_model("openai").model_name == "gpt-4o-mini"

    def test_bad_fallback_warns_once_and_is_ignored(self, monkeypatch, caplog):
        """A fallback that is not a demo provider logs one warning naming the variable; no fallback."""
        settings.reset_warnings()
        name = provider_variable(FALLBACK_ENV, "aws.bedrock")
        monkeypatch.setenv(name, "cohere")
        with caplog.at_level(logging.WARNING, logger="otel_llm.settings"):
            first, second = chat_model("aws.bedrock"), chat_model("aws.bedrock")
        assert first.ls_provider == second.ls_provider == "amazon_bedrock"
        assert len([r for r in caplog.records if name in r.getMessage()]) == 1

    def test_fail_word_fails_the_calls_whose_prompt_holds_it(self, monkeypatch):
        """OTEL_LLM_DEMO_FAIL_WORD: invoke and stream raise for a prompt with the word, answer without it."""
        monkeypatch.setenv(FAIL_WORD_ENV, "outage")
        model = chat_model("openai", latency_ms=0, ttft_ms=0)
        with pytest.raises(SimulatedProviderError):
            model.invoke("simulate an outage please")
        with pytest.raises(SimulatedProviderError):
            list(model.stream("simulate an outage please"))
        assert model.invoke("how do I sort glass").content
