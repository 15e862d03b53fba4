"""A small FastAPI app for the opentelemetry-instrument subprocess test: LLM spans as langsmith makes them.

``POST /chat`` makes a Bedrock LLM span inside the request (with a session id in baggage, as apps do).
``POST /chat-late`` returns at once; an OpenAI LLM span is made ~0.25 s later from another thread, with
explicit start/end times, under the request span, as langsmith[otel] does. No OpenTelemetry setup here.
Run: ``opentelemetry-instrument python -m tests.integration.apps.llm_app <port>``.
"""

from __future__ import annotations

import sys
import threading
import time

import uvicorn
from fastapi import FastAPI
from opentelemetry import baggage, context, trace

# What langsmith[otel] puts on a Bedrock chat model's span (see shared notes: ls_provider is the truth).
BEDROCK_CALL = {
    "langsmith.span.kind": "llm",
    "langsmith.metadata.ls_provider": "amazon_bedrock",
    "langsmith.metadata.langgraph_node": "answer",
    "gen_ai.system": "anthropic",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 30,
}
OPENAI_CALL = {
    "langsmith.span.kind": "llm",
    "langsmith.metadata.ls_provider": "openai",
    "gen_ai.system": "openai",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 50,
    "gen_ai.usage.output_tokens": 10,
}
LANGSMITH_DRAIN_S = 0.25

app = FastAPI()
tracer = trace.get_tracer("langsmith")


@app.post("/chat")
def chat() -> dict:
    token = context.attach(baggage.set_baggage("session.id", "session-42"))
    try:
        with tracer.start_as_current_span("ChatBedrock", attributes=BEDROCK_CALL):
            pass
    finally:
        context.detach(token)
    return {"ok": True}


@app.post("/chat-late")
def chat_late() -> dict:
    request_context = context.get_current()
    start_ns = time.time_ns()

    def make_span_later() -> None:
        time.sleep(LANGSMITH_DRAIN_S)  # the app's own behaviour under test: langsmith's background drain
        span = tracer.start_span("ChatOpenAI", context=request_context, attributes=OPENAI_CALL,
                                 start_time=start_ns)
        span.end(end_time=start_ns + 200_000_000)

    threading.Thread(target=make_span_later, daemon=True).start()
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
