"""A fake LLM provider on 127.0.0.1 (random port) speaking the real wire formats the SDKs parse.

- OpenAI chat completions, ``POST /v1/chat/completions`` and Azure OpenAI's
  ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``: JSON, or server-sent events when
  the request says ``"stream": true`` (a final usage chunk when ``stream_options.include_usage``).
- Bedrock Runtime, ``POST /model/{modelId}/converse`` (JSON), ``.../converse-stream`` (the AWS event stream:
  binary frames with CRC32 checksums, ``application/vnd.amazon.eventstream``) and ``.../invoke`` (Anthropic
  messages JSON).

Every answer reports ``USAGE`` tokens (with cache-read, cache-write and reasoning details where the API has a
field for them). A request for model ``MISSING_MODEL`` fails the way each API fails: 404 ``model_not_found``
for OpenAI, 400 ``ValidationException`` for Bedrock (neither is retried by the SDKs). Requests are recorded
(method, path) for the tests.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from urllib.parse import unquote, urlsplit

from tests.support.local_http import LocalHTTPServer, QuietHandler

MISSING_MODEL = "missing-model"
OPENAI_RESPONSE_MODEL_SUFFIX = "-2024-07-18"
USAGE = {"input": 12, "output": 5, "cache_read": 4, "cache_write": 3, "reasoning": 2}
REPLY = "Hello there"


def _openai_usage() -> dict:
    return {
        "prompt_tokens": USAGE["input"], "completion_tokens": USAGE["output"],
        "total_tokens": USAGE["input"] + USAGE["output"],
        "prompt_tokens_details": {"cached_tokens": USAGE["cache_read"]},
        "completion_tokens_details": {"reasoning_tokens": USAGE["reasoning"]},
    }


def _bedrock_usage() -> dict:
    return {
        "inputTokens": USAGE["input"], "outputTokens": USAGE["output"],
        "totalTokens": USAGE["input"] + USAGE["output"],
        "cacheReadInputTokens": USAGE["cache_read"], "cacheWriteInputTokens": USAGE["cache_write"],
    }


def event_stream_frame(event_type: str, payload: dict) -> bytes:
    """One AWS event-stream message: prelude (total and headers length, CRC), string headers, JSON payload,
    message CRC. The framing botocore.eventstream parses."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        encoded = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _openai_chunks(model: str, include_usage: bool) -> bytes:
    def chunk(choices: list, usage: dict | None = None) -> bytes:
        data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
                "model": model, "choices": choices}
        if usage is not None:
            data["usage"] = usage
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    out = chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for word in REPLY.split(" "):
        out += chunk([{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}])
    out += chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if include_usage:
        out += chunk([], _openai_usage())
    return out + b"data: [DONE]\n\n"


class FakeLLMProvider:
    """Serves until ``close()``; ``base_url`` for OpenAI clients is ``f"{url}/v1"``, Bedrock's endpoint is
    ``url``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        provider = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = urlsplit(self.path).path
                with provider._lock:
                    provider.requests.append(("POST", self.path))
                request = json.loads(body or b"{}")
                if path.endswith("/chat/completions"):
                    self._openai(request, path)
                elif path.startswith("/model/"):
                    model_id, _, action = unquote(path[len("/model/"):]).rpartition("/")
                    self._bedrock(model_id, action, request)
                else:
                    self._send(404, "application/json", b'{"message": "no such route"}')

            def _openai(self, request: dict, path: str) -> None:
                model = request.get("model") or path.split("/")[3]  # Azure: the deployment names the model
                if model == MISSING_MODEL:
                    error = {"error": {"message": "The model does not exist", "type": "invalid_request_error",
                                       "param": None, "code": "model_not_found"}}
                    self._send(404, "application/json", json.dumps(error).encode())
                    return
                answered = model + OPENAI_RESPONSE_MODEL_SUFFIX
                if request.get("stream"):
                    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                    self._send(200, "text/event-stream", _openai_chunks(answered, include_usage))
                    return
                reply = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
                         "model": answered, "usage": _openai_usage(),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": REPLY}}]}
                self._send(200, "application/json", json.dumps(reply).encode())

            def _bedrock(self, model_id: str, action: str, request: dict) -> None:
                if model_id == MISSING_MODEL:
                    self._send(400, "application/json", b'{"message": "The model identifier is invalid."}',
                               {"x-amzn-ErrorType": "ValidationException"})
                elif action == "converse":
                    reply = {"output": {"message": {"role": "assistant", "content": [{"text": REPLY}]}},
                             "stopReason": "end_turn", "usage": _bedrock_usage(), "metrics": {"latencyMs": 5}}
                    self._send(200, "application/json", json.dumps(reply).encode())
                elif action == "converse-stream":
                    frames = event_stream_frame("messageStart", {"role": "assistant"})
                    for word in REPLY.split(" "):
                        frames += event_stream_frame(
                            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word + " "}})
                    frames += event_stream_frame("contentBlockStop", {"contentBlockIndex": 0})
                    frames += event_stream_frame("messageStop", {"stopReason": "end_turn"})
                    frames += event_stream_frame("metadata", {"usage": _bedrock_usage(),
                                                              "metrics": {"latencyMs": 5}})
                    self._send(200, "application/vnd.amazon.eventstream", frames)
                elif action == "invoke":
                    reply = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model_id,
                             "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn",
                             "usage": {"input_tokens": USAGE["input"], "output_tokens": USAGE["output"]}}
                    self._send(200, "application/json", json.dumps(reply).encode())
                else:
                    self._send(404, "application/json", b'{"message": "no such action"}')

            def _send(self, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
                headers = {"x-amzn-RequestId": "fake-request", **(headers or {})}
                self.reply(status, content_type, body, headers)

        self._http = LocalHTTPServer(Handler, "fake-llm")

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        self._http.close()
