"""The reference app's LangGraph pipeline: intent, parallel subagents (Send), a streaming answer.

Shape (the Eco2 agent's chat worker, trimmed to one subagent of each kind)::

    intent (LLM) ──Send──► retrieval  (a LangChain retriever over a small in-memory corpus)
                 ├─Send──► character  (gRPC call to the local character service)
                 ├─Send──► weather    (HTTP call to the local HTTP service)
                 └─Send──► general    (an LLM call)
                               ──► answer (LLM, streams its tokens)

``build_graph(clients)`` compiles the sync graph, ``build_graph(clients, asynchronous=True)`` the async one
with the same nodes and edges. The chat models are the offline ones of ``otel_llm.demo.models``; the provider
of each request comes from the state (``provider``), so one batch spans several providers. Each model call
also makes its "provider API" HTTP call through ``clients.http`` (as a real SDK would), to the same local HTTP
service.

There is no tracing code here: node, LLM and retriever spans come from the LangChain instrumentation, the gRPC
and HTTP client spans (the LLM calls' too) from OpenTelemetry's gRPC and httpx instrumentations, all loaded by
``opentelemetry-instrument``. Fault injection for load tests: ``OTEL_LLM_DEMO_NODE_DELAY_MS_<NODE>`` (e.g.
``OTEL_LLM_DEMO_NODE_DELAY_MS_INTENT=400``) delays every run of that node by that many milliseconds before its
work, ``OTEL_LLM_DEMO_NODE_DELAY_MS_<NODE>_<PROVIDER>`` (``..._INTENT_AWS_BEDROCK``) only the requests of one
provider, i.e. one experiment arm (default 0; a bad value warns once and counts as 0). ``run_config`` builds
the Eco2 agent's run configuration (section 2.3): run name, ``intent:*`` tags, job/user metadata and the
session as ``thread_id``.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from otel_llm import semconv
from otel_llm.demo.models import chat_model, env_milliseconds, provider_variable
from otel_llm.demo.services import character_stub

SUBAGENTS = ("retrieval", "character", "weather", "general")
NODES = ("intent", *SUBAGENTS, "answer")
LLM_NODES = ("intent", "general", "answer")  # the nodes that call a chat model, once each
GENERAL_INTENT = "general"
# Keyword routing stands in for parsing the intent model's answer: the fake models cannot classify.
INTENT_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    "waste": ("bottle", "recycle", "plastic", "trash", "waste", "sort"),
    "character": ("eco", "character", "mascot"),
    "weather": ("weather", "rain", "forecast", "collection"),
}
CHARACTER_NAME = "eco"
WEATHER_CITY = "seoul"
NODE_DELAY_ENV = "OTEL_LLM_DEMO_NODE_DELAY_MS"
SERVICE_TIMEOUT_S = 5.0
MAX_CACHED_MODELS = 16

CORPUS = (
    Document(
        page_content="Rinse plastic bottles and remove the label before recycling.", metadata={"id": "pet"}
    ),
    Document(page_content="Glass goes in the glass bin; lids are metal waste.", metadata={"id": "glass"}),
    Document(page_content="Paper must be dry and free of food.", metadata={"id": "paper"}),
    Document(page_content="Bulky waste needs a collection appointment.", metadata={"id": "bulky"}),
)


class ChatState(TypedDict, total=False):
    """The graph's state: the request, the intent, what each subagent found, and the streamed answer."""

    message: str
    provider: str
    model: str
    intent: str
    findings: Annotated[list[str], operator.add]
    answer: str


@dataclass(frozen=True)
class ServiceClients:
    """Clients of the local services: a gRPC channel, an httpx client with the HTTP service as base_url.

    Sync clients (``grpc.Channel``, ``httpx.Client``) for the sync graph; ``grpc.aio.Channel`` and
    ``httpx.AsyncClient`` for the async one.
    """

    grpc_channel: Any
    http: Any


class KeywordRetriever(BaseRetriever):
    """A retrieval-like subagent: documents sharing a word with the query, best first."""

    documents: tuple[Document, ...] = CORPUS
    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().split())
        scored = [
            (len(words & set(doc.page_content.lower().split())), index, doc)
            for index, doc in enumerate(self.documents)
        ]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [doc for _, _, doc in scored[: self.k]]


def classify_intent(message: str) -> str:
    """The intent of a message by keyword (the first intent whose keyword it contains), else ``general``."""
    words = set(str(message).lower().split())
    for intent, keywords in INTENT_KEYWORDS.items():
        if words.intersection(keywords):
            return intent
    return GENERAL_INTENT


def run_config(
    job_id: str,
    session_id: str | None = None,
    user_id: str | None = None,
    intent: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The LangGraph run config of the Eco2 agent (section 2.3): what LangSmith and our spans filter on."""
    run_tags = list(tags) if tags else []
    if intent:
        run_tags.append(f"intent:{intent}")
    run_metadata: dict[str, Any] = {"job_id": job_id, "user_id": user_id, "intent": intent}
    if metadata:
        run_metadata.update(metadata)
    config: dict[str, Any] = {
        "run_name": f"chat:{job_id}",
        "tags": run_tags,
        "metadata": run_metadata,
        "configurable": {},
    }
    if session_id:
        config["configurable"]["thread_id"] = session_id
    return config


# --- prompts and results shared by the sync and async nodes ------------------------------------------------
def _intent_prompt(state: ChatState) -> list[BaseMessage]:
    return [
        SystemMessage(
            f"Classify the user's intent as one of: {', '.join([*INTENT_KEYWORDS, GENERAL_INTENT])}."
        ),
        HumanMessage(state["message"]),
    ]


def _general_prompt(state: ChatState) -> list[BaseMessage]:
    return [SystemMessage("You are a helpful recycling assistant."), HumanMessage(state["message"])]


def _answer_prompt(state: ChatState) -> list[BaseMessage]:
    context = "\n".join(sorted(state.get("findings", [])))
    return [SystemMessage(f"Answer using these findings:\n{context}"), HumanMessage(state["message"])]


def _fan_out(state: ChatState) -> list[Send]:
    branch = {key: state[key] for key in ("message", "provider", "model", "intent") if key in state}
    return [Send(name, branch) for name in SUBAGENTS]


def _retrieval_finding(documents: list[Document]) -> dict[str, list[str]]:
    return {"findings": [f"retrieval: {' '.join(doc.page_content for doc in documents)}"]}


def _character_finding(character: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        "findings": [f"character: {character['name']} ({character['role']}) says {character['catchphrase']}"]
    }


def _weather_finding(forecast: Mapping[str, Any]) -> dict[str, list[str]]:
    return {"findings": [f"weather: {forecast['city']} {forecast['forecast']} {forecast['celsius']}C"]}


def _text(content: Any) -> str:
    return content if isinstance(content, str) else str(content)


class _Models:
    """The chat model of each (provider, model) a request asks for, built on first use and kept.

    Built models call the provider API through ``http_options`` (``chat_model``'s client arguments).
    """

    def __init__(self, models: Mapping[str, BaseChatModel] | None, http_options: Mapping[str, Any]) -> None:
        self._fixed = dict(models) if models is not None else None
        self._http_options = dict(http_options)
        self._built: dict[tuple[str, str | None], BaseChatModel] = {}
        self._lock = threading.Lock()

    def __call__(self, state: ChatState) -> BaseChatModel:
        provider = semconv.normalize_provider(state.get("provider")) or ""
        if self._fixed is not None:
            if provider not in self._fixed:
                raise ValueError(
                    f"provider must be one of {', '.join(self._fixed)}; got {state.get('provider')!r}"
                )
            return self._fixed[provider]
        key = (provider, semconv.normalize_model(state.get("model")))
        with self._lock:
            model = self._built.get(key)
            if model is None:
                model = chat_model(provider, model=key[1], **self._http_options)
                if len(self._built) < MAX_CACHED_MODELS:
                    self._built[key] = model
        return model


def _sync_nodes(clients: ServiceClients, model_for: _Models, retriever: KeywordRetriever) -> dict[str, Any]:
    character = character_stub(clients.grpc_channel)

    def intent(state: ChatState) -> dict[str, Any]:
        model_for(state).invoke(_intent_prompt(state))
        return {"intent": classify_intent(state["message"])}

    def retrieval(state: ChatState) -> dict[str, Any]:
        return _retrieval_finding(retriever.invoke(state["message"]))

    def character_node(state: ChatState) -> dict[str, Any]:
        return _character_finding(character({"name": CHARACTER_NAME}, timeout=SERVICE_TIMEOUT_S))

    def weather(state: ChatState) -> dict[str, Any]:
        response = clients.http.get(f"/weather/{WEATHER_CITY}", timeout=SERVICE_TIMEOUT_S)
        response.raise_for_status()
        return _weather_finding(response.json())

    def general(state: ChatState) -> dict[str, Any]:
        return {"findings": [f"general: {_text(model_for(state).invoke(_general_prompt(state)).content)}"]}

    def answer(state: ChatState) -> dict[str, Any]:
        return {
            "answer": "".join(
                _text(chunk.content) for chunk in model_for(state).stream(_answer_prompt(state))
            )
        }

    return dict(zip(NODES, (intent, retrieval, character_node, weather, general, answer), strict=True))


def _async_nodes(clients: ServiceClients, model_for: _Models, retriever: KeywordRetriever) -> dict[str, Any]:
    character = character_stub(clients.grpc_channel)

    async def intent(state: ChatState) -> dict[str, Any]:
        await model_for(state).ainvoke(_intent_prompt(state))
        return {"intent": classify_intent(state["message"])}

    async def retrieval(state: ChatState) -> dict[str, Any]:
        return _retrieval_finding(await retriever.ainvoke(state["message"]))

    async def character_node(state: ChatState) -> dict[str, Any]:
        return _character_finding(await character({"name": CHARACTER_NAME}, timeout=SERVICE_TIMEOUT_S))

    async def weather(state: ChatState) -> dict[str, Any]:
        response = await clients.http.get(f"/weather/{WEATHER_CITY}", timeout=SERVICE_TIMEOUT_S)
        response.raise_for_status()
        return _weather_finding(response.json())

    async def general(state: ChatState) -> dict[str, Any]:
        reply = await model_for(state).ainvoke(_general_prompt(state))
        return {"findings": [f"general: {_text(reply.content)}"]}

    async def answer(state: ChatState) -> dict[str, Any]:
        chunks = [_text(chunk.content) async for chunk in model_for(state).astream(_answer_prompt(state))]
        return {"answer": "".join(chunks)}

    return dict(zip(NODES, (intent, retrieval, character_node, weather, general, answer), strict=True))


def node_delay_s(node: str, provider: Any) -> float:
    """The injected delay of ``node`` for a request of ``provider``, in seconds (0 unless configured)."""
    provider_name = semconv.normalize_provider(provider) or ""
    return env_milliseconds(provider_variable(NODE_DELAY_ENV, node), provider_name, 0.0) / 1000


def _delayed(name: str, node: Any, asynchronous: bool) -> Any:
    """``node`` preceded by its injected delay (:func:`node_delay_s`), read per run."""
    if asynchronous:

        async def delayed_async(state: ChatState) -> dict[str, Any]:
            delay_s = node_delay_s(name, state.get("provider"))
            if delay_s:
                await asyncio.sleep(delay_s)
            return await node(state)

        return delayed_async

    def delayed(state: ChatState) -> dict[str, Any]:
        delay_s = node_delay_s(name, state.get("provider"))
        if delay_s:
            time.sleep(delay_s)
        return node(state)

    return delayed


def build_graph(
    clients: ServiceClients, *, asynchronous: bool = False, models: Mapping[str, BaseChatModel] | None = None
) -> Any:
    """The compiled reference graph; ``asynchronous`` picks async nodes (run it with ``ainvoke``/``astream``).

    ``models`` maps canonical provider names to chat models; by default each request gets the fake model
    of its ``provider`` and ``model`` (``otel_llm.demo.models.chat_model``), calling the provider API through
    ``clients.http``.
    """
    make_nodes = _async_nodes if asynchronous else _sync_nodes
    http_options = {"async_http_client" if asynchronous else "http_client": clients.http}
    nodes = make_nodes(clients, _Models(models, http_options), KeywordRetriever())
    builder = StateGraph(ChatState)
    for name, node in nodes.items():
        builder.add_node(name, _delayed(name, node, asynchronous))
    builder.add_edge(START, "intent")
    builder.add_conditional_edges("intent", _fan_out, list(SUBAGENTS))
    for name in SUBAGENTS:
        builder.add_edge(name, "answer")
    builder.add_edge("answer", END)
    return builder.compile()
