"""Offline chat models for the reference app, presented as real providers.

``FakeProviderChatModel`` is a LangChain chat model that answers without a network: it reports the model id,
``_llm_type`` and ``ls_provider`` of a real provider (OpenAI ``gpt-4o-mini``, Bedrock
``anthropic.claude-3-haiku-20240307-v1:0``), returns ``usage_metadata`` token counts, and streams its answer
word by word through ``_stream``/``_astream`` (calling ``on_llm_new_token`` like a real integration), after a
time to first token and spread over a total latency.

Like a real SDK it can also call its provider's API over HTTP from inside the call: given ``http_client`` (an
``httpx.Client``, for ``invoke``/``stream``) or ``async_http_client`` (an ``httpx.AsyncClient``, for
``ainvoke``/``astream``) whose base URL is the demo's HTTP service, each call first POSTs
``{"model": ..., "stream": ...}`` to ``/v1/chat/completions`` there (``otel_llm.demo.services``), so a trace
shows the SDK's own HTTP client span under the LLM span. Without a client it makes no network call.

It adds no telemetry itself: every span and metric about these calls comes from the instrumentation (the HTTP
client span from OpenTelemetry's httpx instrumentation).

Settings (milliseconds, non-negative numbers; a bad value warns once and falls back to the default):

- ``OTEL_LLM_DEMO_LATENCY_MS`` (default 40): total duration of one model call.
- ``OTEL_LLM_DEMO_TTFT_MS`` (default 15): time to the first streamed token, capped at the latency.
- ``OTEL_LLM_DEMO_LATENCY_MS_<PROVIDER>`` / ``OTEL_LLM_DEMO_TTFT_MS_<PROVIDER>``: the same for one provider
  (name upper-cased, other characters ``_``: ``OTEL_LLM_DEMO_LATENCY_MS_AWS_BEDROCK``), e.g. for an A/B
  experiment whose arms differ in latency.

Failure drills (off when unset; a bad value warns once and is ignored):

- ``OTEL_LLM_DEMO_FALLBACK_<PROVIDER>`` (a demo provider name): calls meant for ``<PROVIDER>`` are served by
  that provider's model instead, as if the app had fallen back (``OTEL_LLM_DEMO_FALLBACK_AWS_BEDROCK=openai``:
  the Bedrock arm of an experiment is answered by OpenAI, an experiment fallback).
- ``OTEL_LLM_DEMO_FAIL_WORD``: a call whose prompt contains this word raises ``SimulatedProviderError``
  (a provider outage for chosen requests: their streams end in error).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from otel_llm import semconv
from otel_llm.demo.services import COMPLETIONS_PATH
from otel_llm.settings import _warn_once, env_float

_NON_ALNUM = re.compile(r"[^A-Z0-9]")
LATENCY_ENV = "OTEL_LLM_DEMO_LATENCY_MS"
TTFT_ENV = "OTEL_LLM_DEMO_TTFT_MS"
FALLBACK_ENV = "OTEL_LLM_DEMO_FALLBACK"
FAIL_WORD_ENV = "OTEL_LLM_DEMO_FAIL_WORD"
DEFAULT_LATENCY_MS = 40.0
DEFAULT_TTFT_MS = 15.0
DEFAULT_ANSWER_WORDS = 12

# The words of the fake answers; a hash of the prompt picks them, so answers are repeatable.
_VOCABULARY = (
    "rinse",
    "the",
    "bottle",
    "remove",
    "label",
    "sort",
    "plastic",
    "paper",
    "glass",
    "metal",
    "bin",
    "collection",
    "day",
    "is",
    "tuesday",
    "check",
    "local",
    "rules",
    "recycle",
    "compost",
    "reuse",
    "drop",
    "point",
    "nearby",
)


@dataclass(frozen=True)
class ProviderModel:
    """A provider as the app sees it: canonical name, LangSmith's word for it, model id, LangChain type."""

    provider: str
    ls_provider: str
    model: str
    llm_type: str


# The two providers of the demo, keyed by canonical gen_ai.provider.name.
PROVIDER_MODELS: dict[str, ProviderModel] = {
    "openai": ProviderModel("openai", "openai", "gpt-4o-mini", "openai-chat"),
    "aws.bedrock": ProviderModel(
        "aws.bedrock",
        "amazon_bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon_bedrock_converse_chat",
    ),
}
PROVIDERS = tuple(PROVIDER_MODELS)


def provider_variable(name: str, provider: str) -> str:
    """The per-provider form of a setting: ``OTEL_LLM_DEMO_LATENCY_MS_AWS_BEDROCK`` for aws.bedrock."""
    return f"{name}_{_NON_ALNUM.sub('_', provider.upper())}"


def env_milliseconds(name: str, provider: str, default: float) -> float:
    """The provider's own variable, else the shared one, else ``default``; bad values warn once (settings)."""
    shared = env_float(name, default, minimum=0)
    return env_float(provider_variable(name, provider), shared, minimum=0)


def _fallback_spec(spec: ProviderModel) -> ProviderModel:
    """Who serves calls meant for ``spec``: the provider ``OTEL_LLM_DEMO_FALLBACK_<PROVIDER>`` names."""
    name = provider_variable(FALLBACK_ENV, spec.provider)
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return spec
    target = PROVIDER_MODELS.get(semconv.normalize_provider(raw) or "")
    if target is None:
        _warn_once(name, raw, f"one of {', '.join(PROVIDERS)}", "no fallback")
        return spec
    return target


class SimulatedProviderError(RuntimeError):
    """The failure ``OTEL_LLM_DEMO_FAIL_WORD`` asks for, as a provider SDK would raise on an outage."""


class FakeProviderChatModel(BaseChatModel):
    """A chat model that answers offline while looking like a real provider's model to LangChain."""

    model_name: str
    ls_provider: str
    llm_type: str
    latency_ms: float = DEFAULT_LATENCY_MS
    ttft_ms: float = DEFAULT_TTFT_MS
    answer_words: int = DEFAULT_ANSWER_WORDS
    http_client: Any = None  # httpx.Client: the provider API call of invoke/stream
    async_http_client: Any = None  # httpx.AsyncClient: the same for ainvoke/astream
    fail_word: str | None = None

    @property
    def _llm_type(self) -> str:
        return self.llm_type

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=self.ls_provider, ls_model_name=self.model_name, ls_model_type="chat"
        )
        if stop:
            params["ls_stop"] = stop
        return params

    # --- the answer ---------------------------------------------------------------------------------------
    def _words(self, messages: list[BaseMessage]) -> list[str]:
        prompt = "\n".join(str(message.content) for message in messages)
        if self.fail_word and self.fail_word in prompt:
            raise SimulatedProviderError(f"{self.ls_provider} unavailable (simulated: {self.fail_word!r})")
        digest = hashlib.sha256(f"{self.model_name}\n{prompt}".encode()).digest()
        count = max(1, self.answer_words)
        return [_VOCABULARY[digest[index % len(digest)] % len(_VOCABULARY)] for index in range(count)]

    def _usage(self, messages: list[BaseMessage], output_tokens: int) -> dict[str, int]:
        input_tokens = sum(len(str(message.content).split()) for message in messages)
        return {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[tuple[float, ChatGenerationChunk]]:
        """(seconds to wait before it, chunk) for each streamed token; the last chunk carries the usage."""
        words = self._words(messages)
        ttft = min(self.ttft_ms, self.latency_ms) / 1000.0
        gap = (self.latency_ms / 1000.0 - ttft) / max(1, len(words) - 1) if len(words) > 1 else 0.0
        response_metadata = {"model_name": self.model_name}
        for index, word in enumerate(words):
            last = index == len(words) - 1
            message = AIMessageChunk(
                content=word if index == 0 else f" {word}",
                usage_metadata=self._usage(messages, len(words)) if last else None,
                response_metadata=response_metadata if last else {},
            )
            yield (ttft if index == 0 else gap), ChatGenerationChunk(message=message)

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        words = self._words(messages)
        message = AIMessage(
            content=" ".join(words),
            usage_metadata=self._usage(messages, len(words)),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(
            generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name}
        )

    # --- the provider API call ------------------------------------------------------------------------------
    def _request(self, stream: bool) -> dict[str, Any]:
        return {"model": self.model_name, "stream": stream}

    def _call_api(self, stream: bool) -> None:
        if self.http_client is not None:
            self.http_client.post(COMPLETIONS_PATH, json=self._request(stream)).raise_for_status()

    async def _acall_api(self, stream: bool) -> None:
        if self.async_http_client is not None:
            response = await self.async_http_client.post(COMPLETIONS_PATH, json=self._request(stream))
            response.raise_for_status()

    # --- LangChain's interface ----------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._call_api(stream=False)
        time.sleep(self.latency_ms / 1000.0)
        return self._result(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        await self._acall_api(stream=False)
        await asyncio.sleep(self.latency_ms / 1000.0)
        return self._result(messages)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._call_api(stream=True)
        for delay, chunk in self._chunks(messages):
            time.sleep(delay)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await self._acall_api(stream=True)
        for delay, chunk in self._chunks(messages):
            await asyncio.sleep(delay)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def chat_model(
    provider: str,
    *,
    model: str | None = None,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    answer_words: int = DEFAULT_ANSWER_WORDS,
    http_client: Any = None,
    async_http_client: Any = None,
) -> FakeProviderChatModel:
    """The fake chat model for ``provider`` (a ``PROVIDERS`` name or any alias ``semconv`` knows).

    ``model`` defaults to the provider's demo model; latency and time to first token default to
    ``OTEL_LLM_DEMO_LATENCY_MS`` / ``OTEL_LLM_DEMO_TTFT_MS``; ``http_client`` / ``async_http_client`` make
    each call POST to the demo HTTP service first (see the module docstring). The failure drills of the
    module docstring apply: a provider with a fallback gives the fallback provider's model (its own model id).
    """
    spec = PROVIDER_MODELS.get(semconv.normalize_provider(provider) or "")
    if spec is None:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}; got {provider!r}")
    serving = _fallback_spec(spec)
    if serving is not spec:
        spec, model = serving, None
    latency = (
        env_milliseconds(LATENCY_ENV, spec.provider, DEFAULT_LATENCY_MS)
        if latency_ms is None
        else latency_ms
    )
    ttft = env_milliseconds(TTFT_ENV, spec.provider, DEFAULT_TTFT_MS) if ttft_ms is None else ttft_ms
    if latency < 0 or ttft < 0:
        raise ValueError("latency_ms and ttft_ms must be non-negative")
    if answer_words < 1:
        raise ValueError("answer_words must be at least 1")
    return FakeProviderChatModel(
        model_name=semconv.normalize_model(model) or spec.model,
        ls_provider=spec.ls_provider,
        llm_type=spec.llm_type,
        latency_ms=latency,
        ttft_ms=ttft,
        answer_words=answer_words,
        http_client=http_client,
        async_http_client=async_http_client,
        fail_word=(os.environ.get(FAIL_WORD_ENV) or "").strip() or None,
    )
