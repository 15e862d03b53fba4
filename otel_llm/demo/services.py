"""The reference app's downstream services: a gRPC character service and an HTTP service, both local.

They stand in for the Eco2 agent's gRPC ``character`` subagent backend and HTTP APIs, so a trace shows gRPC
and HTTP client spans (made inside LangGraph nodes) with the matching server spans. The HTTP service answers
the weather node (``GET /weather/{city}``) and the fake chat models' provider API calls (``POST
/v1/chat/completions``, made from inside each LLM call as a real SDK's would be). They add no telemetry of
their own: under ``opentelemetry-instrument`` the gRPC and FastAPI instrumentations make the server spans;
embedded mode passes interceptors and instruments the app explicitly.

The gRPC service needs no protoc: a generic handler with JSON (de)serialisers, method ``/demo.Character/Get``.

Run both: ``python -m otel_llm.demo.services --grpc-port 50051 --http-port 8081`` (port 0 picks a free one;
the chosen ports are printed as one JSON line ``{"grpc_port": ..., "http_port": ...}`` on stdout).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

GRPC_SERVICE = "demo.Character"
GRPC_METHOD = f"/{GRPC_SERVICE}/Get"
COMPLETIONS_PATH = "/v1/chat/completions"
LOOPBACK = "127.0.0.1"
GRPC_WORKERS = 16
STARTUP_POLL_S = 0.01
STOP_GRACE_S = 1.0
MAX_MODEL_LENGTH = 128

CHARACTERS = {
    "eco": {"name": "Eco", "role": "recycling guide", "catchphrase": "Sort it right!"},
    "leaf": {"name": "Leaf", "role": "compost expert", "catchphrase": "Back to the soil."},
}
WEATHER = {
    "seoul": {"city": "Seoul", "forecast": "clear", "celsius": 18},
    "busan": {"city": "Busan", "forecast": "rain", "celsius": 21},
}


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def decode_json(data: bytes) -> Any:
    return json.loads(data)


def character_lookup(request: Any, context: grpc.ServicerContext) -> dict[str, Any]:
    """``/demo.Character/Get``: the character named in the request; NOT_FOUND for unknown names."""
    name = str(request.get("name", "")).lower() if isinstance(request, dict) else ""
    character = CHARACTERS.get(name)
    if character is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no character {name!r}")
    return character


def character_stub(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    """The client callable for ``/demo.Character/Get`` on a sync or asyncio channel."""
    return channel.unary_unary(GRPC_METHOD, request_serializer=encode_json, response_deserializer=decode_json)


def start_grpc_server(
    port: int = 0, interceptors: Sequence[grpc.ServerInterceptor] = ()
) -> tuple[grpc.Server, int]:
    """Starts the character service on 127.0.0.1; returns the server and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS), interceptors=list(interceptors)
    )
    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(
                character_lookup, request_deserializer=decode_json, response_serializer=encode_json
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{LOOPBACK}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC service to {LOOPBACK}:{port}")
    server.start()
    return server, bound


class CompletionRequest(BaseModel):
    model: str = Field(min_length=1, max_length=MAX_MODEL_LENGTH)
    stream: bool = False


def create_http_app() -> FastAPI:
    """The HTTP service: ``GET /weather/{city}`` and the fake provider API ``POST /v1/chat/completions``."""
    app = FastAPI(title="demo HTTP service")

    @app.post(COMPLETIONS_PATH)
    def completions(request: CompletionRequest) -> dict[str, Any]:
        """Acknowledges a fake model's call (the fake model makes its answer itself, offline)."""
        return {"object": "chat.completion", "model": request.model, "stream": request.stream}

    @app.get("/weather/{city}")
    def weather(city: str) -> dict[str, Any]:
        forecast = WEATHER.get(city.lower())
        if forecast is None:
            raise HTTPException(status_code=404, detail=f"no forecast for {city!r}")
        return forecast

    return app


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (port 0: a free one), for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(128)
    return sock


class ServerThread:
    """Serves an ASGI app with uvicorn on a loopback socket in a daemon thread (embedded mode and tests)."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self._socket = bind_loopback(port)
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        """Starts serving; returns once uvicorn accepts connections (RuntimeError after ``timeout_s``)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server on port {self.port} did not start within {timeout_s} s")
            time.sleep(STARTUP_POLL_S)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()


@dataclass(frozen=True)
class LocalServices:
    """Where the running local services listen."""

    grpc_target: str  # host:port
    http_url: str  # base URL


@contextmanager
def local_services(
    grpc_interceptors: Sequence[grpc.ServerInterceptor] = (),
    prepare_http_app: Callable[[FastAPI], None] | None = None,
) -> Iterator[LocalServices]:
    """Both services on 127.0.0.1 free ports for the block (embedded mode, tests); stopped after it.

    ``grpc_interceptors`` go to the gRPC server; ``prepare_http_app`` gets the HTTP app before it serves (e.g.
    to instrument it).
    """
    server, port = start_grpc_server(interceptors=grpc_interceptors)
    try:
        app = create_http_app()
        if prepare_http_app is not None:
            prepare_http_app(app)
        http = ServerThread(app).start()
        try:
            yield LocalServices(f"{LOOPBACK}:{port}", http.url)
        finally:
            http.stop()
    finally:
        server.stop(grace=STOP_GRACE_S).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m otel_llm.demo.services", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--grpc-port", type=int, default=0, help="gRPC port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)
    grpc_server, grpc_port = start_grpc_server(args.grpc_port)
    sock = bind_loopback(args.http_port)
    print(json.dumps({"grpc_port": grpc_port, "http_port": sock.getsockname()[1]}), flush=True)
    try:
        uvicorn.Server(uvicorn.Config(create_http_app(), log_level="warning")).run(sockets=[sock])
    finally:
        grpc_server.stop(grace=STOP_GRACE_S).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
