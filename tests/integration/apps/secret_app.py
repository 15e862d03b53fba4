"""An app that leaks every kind of secret otel-llm has to stop, for tests/integration/test_redaction.py.

Run as ``python -m tests.integration.apps.secret_app <otlp endpoint> <METRIC file> <service>`` with
langsmith in OTel mode (LANGSMITH_TRACING=true, LANGSMITH_TRACING_MODE=otel; it then never calls LangSmith)
and the planted secrets in LANGSMITH_* variables, which langsmith copies onto its spans as
``langsmith.metadata.*``. The endpoint is the collector's OTLP/gRPC ``host:port`` or an OTLP/HTTP base URL
(``http://...``). The pipeline is ``build_telemetry`` from the OTEL_LLM_* variables, so OTEL_LLM_REDACT /
OTEL_LLM_ENABLED choose what runs.

One request (a SERVER span whose URL carries user-info, a secret query parameter and a key id in its path)
calls a ``@traceable`` function (exported by langsmith itself) and runs a LangChain chat model, through
otel-llm's LangChain instrumentation, with run metadata ``api_key`` and a provider error whose message holds
the OpenAI key. The ``SECRET_*`` values come from the environment.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.tracers.langchain import wait_for_all_tracers
from langsmith import traceable
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from otel_llm.configure import build_telemetry
from otel_llm.exporters.metric_log import MetricLogExporter
from otel_llm.instrumentation.langchain import LangChainInstrumentor
from otel_llm.settings import load_settings


class FailingChatModel(BaseChatModel):
    """A provider answering 401 with the key in its message, as OpenAI's client does."""

    @property
    def _llm_type(self) -> str:
        return "openai-chat"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        raise PermissionError(f"Error code: 401 - Incorrect API key provided: {os.environ['SECRET_OPENAI']}")


@traceable(name="lookup")
def lookup(question: str) -> str:
    """A langsmith-traced function: langsmith exports its span itself, with the LANGSMITH_* variables."""
    return question


def main(endpoint: str, metric_file: str, service: str) -> None:
    exporter = (HttpSpanExporter(endpoint=f"{endpoint}/v1/traces") if endpoint.startswith("http")
                else GrpcSpanExporter(endpoint=endpoint, insecure=True))
    telemetry = build_telemetry(load_settings(), resource=Resource.create({"service.name": service}),
                                span_exporters=[exporter, MetricLogExporter(metric_file)], metric_readers=[])
    trace.set_tracer_provider(telemetry.tracer_provider)
    LangChainInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)
    tracer = telemetry.tracer_provider.get_tracer("app")
    url = f"https://user:{os.environ['SECRET_PASSWORD']}@api.example.com/api/v1/chat"
    with tracer.start_as_current_span("POST /api/v1/chat", kind=SpanKind.SERVER, attributes={
        "url.full": f"{url}?api_key={os.environ['SECRET_QUERY']}",
        "url.path": f"/api/v1/keys/{os.environ['SECRET_AWS_KEY_ID']}",
    }):
        lookup("hello")
        try:
            metadata = {"api_key": os.environ["SECRET_METADATA"]}
            FailingChatModel().invoke("hello", config={"metadata": metadata})
        except PermissionError:
            pass
    wait_for_all_tracers()
    telemetry.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
