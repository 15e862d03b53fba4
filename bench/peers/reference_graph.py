"""The benchmark's graph: the reference app's shape with fake models and no sleeps, importable in any venv.

intent (an LLM call) -> Send to three subagents in parallel (a retriever, a node opening a client span of
its own, a general LLM call) -> answer (a streamed LLM call, 24 chunks). Models are offline LangChain chat
models presented as OpenAI gpt-4o-mini and Bedrock Claude (``ls_provider``, usage metadata), so every
instrumentation sees what a real integration reports. Needs only langgraph and langchain-core: the peer
virtualenvs import it by path.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.retrievers import BaseRetriever
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry import trace

ANSWER_WORDS = tuple("rinse the bottle remove the label and sort plastic paper glass metal".split()) * 2
SUBAGENTS = ("retrieval", "service", "general")
SERVICE_CALL_SPAN = "service call"


class FakeProviderChat(BaseChatModel):
    """An offline chat model reporting a real provider's model id, ``ls_provider`` and token usage."""

    model_name: str = "gpt-4o-mini"
    ls_provider: str = "openai"

    @property
    def _llm_type(self) -> str:
        return f"{self.ls_provider}-chat"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider=self.ls_provider, ls_model_name=self.model_name, ls_model_type="chat"
        )

    def _usage(self) -> dict[str, int]:
        return {
            "input_tokens": 12,
            "output_tokens": len(ANSWER_WORDS),
            "total_tokens": 12 + len(ANSWER_WORDS),
        }

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        message = AIMessage(
            content=" ".join(ANSWER_WORDS),
            usage_metadata=self._usage(),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(
            generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name}
        )

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        last = len(ANSWER_WORDS) - 1
        for index, word in enumerate(ANSWER_WORDS):
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if index == 0 else f" {word}",
                    usage_metadata=self._usage() if index == last else None,
                    response_metadata={"model_name": self.model_name} if index == last else {},
                )
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


class KeywordRetriever(BaseRetriever):
    """A retriever over three documents, so the retriever callbacks fire."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=f"{query} {index}") for index in range(3)]


class State(TypedDict, total=False):
    message: str
    subagent: str
    findings: Annotated[list[str], operator.add]
    answer: str


def build_graph():
    """The compiled sync graph; invoke it with ``{"message": ...}``."""
    openai = FakeProviderChat()
    bedrock = FakeProviderChat(
        model_name="anthropic.claude-3-haiku-20240307-v1:0", ls_provider="amazon_bedrock"
    )
    retriever = KeywordRetriever()

    def intent(state: State) -> dict:
        openai.invoke(state["message"])
        return {}

    def fan_out(state: State) -> list[Send]:
        return [Send(name, {"message": state["message"], "subagent": name}) for name in SUBAGENTS]

    def retrieval(state: State) -> dict:
        return {"findings": [doc.page_content for doc in retriever.invoke(state["message"])]}

    def service(state: State) -> dict:
        # Stands for the gRPC/HTTP client span a real node opens: it should be a child of this node's span.
        with trace.get_tracer("bench.app").start_as_current_span(SERVICE_CALL_SPAN):
            return {"findings": [state["message"].upper()]}

    def general(state: State) -> dict:
        return {"findings": [bedrock.invoke(state["message"]).text]}

    def answer(state: State) -> dict:
        return {"answer": "".join(chunk.text for chunk in openai.stream(state["message"]))}

    graph = StateGraph(State)
    graph.add_node("intent", intent)
    for name, node in zip(SUBAGENTS, (retrieval, service, general), strict=True):
        graph.add_node(name, node)
        graph.add_edge(name, "answer")
    graph.add_node("answer", answer)
    graph.add_edge(START, "intent")
    graph.add_conditional_edges("intent", fan_out, list(SUBAGENTS))
    graph.add_edge("answer", END)
    return graph.compile()


RUN_CONFIG = {
    "run_name": "chat:bench",
    "tags": ["intent:waste"],
    "metadata": {"job_id": "bench", "user_id": "u"},
}
