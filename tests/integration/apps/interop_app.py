"""A FastAPI app calling a real LLM SDK, for the interop tests: no OpenTelemetry code beyond a final flush.

``python -m tests.integration.apps.interop_app openai|bedrock`` (under ``opentelemetry-instrument``) serves
each route once through FastAPI's TestClient (so each request is a real ASGI request with a SERVER span), then
flushes the tracer and meter providers and exits. The SDK talks to the fake provider at ``FAKE_LLM_URL``:

- ``openai``: ``/chat`` (chat completion), ``/chat-stream`` (streamed, with usage), ``/chat-error`` (unknown
  model: 404), ``/azure`` (``openai.AzureOpenAI`` for ``https://interop.openai.azure.com``; a transport sends
  its requests to the fake provider, so the SDK and the instrumentation see the Azure host), ``/langchain``
  (a LangChain chat model calling the same client: otel-llm's LangChain span around the SDK's span).
- ``bedrock``: ``/converse``, ``/converse-stream``, ``/invoke`` (boto3 ``bedrock-runtime``) and
  ``/converse-error`` (unknown model: ValidationException).

Each route answers ``{"ok": bool}``; a failed LLM call is answered 502 (the app handles the SDK's error).
"""

from __future__ import annotations

import json
import os
import sys

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from opentelemetry import metrics, trace

FAKE_URL = os.environ["FAKE_LLM_URL"]
AZURE_ENDPOINT = "https://interop.openai.azure.com"
OPENAI_MODEL = "gpt-4o-mini"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MISSING_MODEL = "missing-model"
MESSAGES = [{"role": "user", "content": "Say hello"}]
OPENAI_ROUTES = ("/chat", "/chat-stream", "/chat-error", "/azure", "/langchain")
BEDROCK_ROUTES = ("/converse", "/converse-stream", "/invoke", "/converse-error")


def openai_app() -> FastAPI:
    import httpx
    import openai

    class ToFakeProvider(httpx.HTTPTransport):
        """Sends every request to the fake provider, keeping the path and query: DNS for the Azure host."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            fake = httpx.URL(FAKE_URL)
            request.url = request.url.copy_with(scheme=fake.scheme, host=fake.host, port=fake.port)
            return super().handle_request(request)

    client = openai.OpenAI(base_url=f"{FAKE_URL}/v1", api_key="fake-key", max_retries=0)
    azure = openai.AzureOpenAI(azure_endpoint=AZURE_ENDPOINT, api_key="fake-key", api_version="2024-10-21",
                               max_retries=0, http_client=httpx.Client(transport=ToFakeProvider()))
    app = FastAPI()

    @app.post("/chat")
    def chat() -> dict:
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
        return {"ok": True}

    @app.post("/chat-stream")
    def chat_stream() -> dict:
        stream = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True,
                                                stream_options={"include_usage": True})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        return {"ok": bool(text)}

    @app.post("/chat-error")
    def chat_error():
        try:
            client.chat.completions.create(model=MISSING_MODEL, messages=MESSAGES)
        except openai.NotFoundError:
            return JSONResponse({"ok": False}, status_code=502)
        return {"ok": True}

    @app.post("/azure")
    def azure_chat() -> dict:
        azure.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
        return {"ok": True}

    chat_model = sdk_chat_model(client)

    @app.post("/langchain")
    def langchain_chat() -> dict:
        return {"ok": bool(chat_model.invoke("Say hello").content)}

    return app


def sdk_chat_model(client):
    """A minimal LangChain chat model over the openai client (langchain-openai is not a dependency here)."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class SDKChatModel(BaseChatModel):
        model: str = OPENAI_MODEL

        @property
        def _llm_type(self) -> str:
            return "openai-sdk"

        def _get_ls_params(self, stop=None, **kwargs):
            return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai",
                    "ls_model_name": self.model}

        def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
            response = client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": str(m.content)} for m in messages])
            usage = response.usage
            message = AIMessage(content=response.choices[0].message.content, usage_metadata={
                "input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens})
            return ChatResult(generations=[ChatGeneration(message=message)])

    return SDKChatModel()


def bedrock_app() -> FastAPI:
    import boto3
    from botocore.exceptions import ClientError

    runtime = boto3.client("bedrock-runtime", endpoint_url=FAKE_URL, region_name="us-east-1",
                           aws_access_key_id="fake", aws_secret_access_key="fake")
    converse_messages = [{"role": "user", "content": [{"text": "Say hello"}]}]
    app = FastAPI()

    @app.post("/converse")
    def converse() -> dict:
        runtime.converse(modelId=BEDROCK_MODEL, messages=converse_messages)
        return {"ok": True}

    @app.post("/converse-stream")
    def converse_stream() -> dict:
        response = runtime.converse_stream(modelId=BEDROCK_MODEL, messages=converse_messages)
        return {"ok": any("metadata" in event for event in response["stream"])}

    @app.post("/invoke")
    def invoke() -> dict:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Say hello"}]}
        response = runtime.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps(body))
        return {"ok": bool(json.loads(response["body"].read())["content"])}

    @app.post("/converse-error")
    def converse_error():
        try:
            runtime.converse(modelId=MISSING_MODEL, messages=converse_messages)
        except ClientError:
            return JSONResponse({"ok": False}, status_code=502)
        return {"ok": True}

    return app


def main(kind: str) -> None:
    app, routes = (openai_app(), OPENAI_ROUTES) if kind == "openai" else (bedrock_app(), BEDROCK_ROUTES)
    with TestClient(app) as http:
        statuses = {route: http.post(route).status_code for route in routes}
    print(json.dumps(statuses))
    # A batch script's exit: flush spans first (their roll-up records span-derived metrics), then metrics.
    trace.get_tracer_provider().force_flush()
    metrics.get_meter_provider().force_flush()


if __name__ == "__main__":
    main(sys.argv[1])
