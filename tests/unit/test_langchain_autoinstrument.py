"""The LangChain instrumentation under ``opentelemetry-instrument``: env vars only, no tracing code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

APP = """
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
GenericFakeChatModel(messages=iter([AIMessage(content="hi there")])).invoke("q", config={"run_name": "ask"})
"""


def test_opentelemetry_instrument_loads_the_instrumentation_through_its_entry_point(tmp_path):
    """A plain LangChain script run by opentelemetry-instrument exports the LLM span of our scope."""
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="chat-worker",
    )
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    result = subprocess.run(
        [str(launcher), sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    spans, text, index = [], result.stdout, 0
    while (start := text.find("{", index)) != -1:
        span, index = decoder.raw_decode(text, start)
        spans.append(span)
    [span] = [span for span in spans if span["attributes"].get("langsmith.span.kind") == "llm"]
    assert span["name"] == "chat unknown"
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["langsmith.trace.name"] == "ask"
