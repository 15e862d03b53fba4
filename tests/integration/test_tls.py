"""TLS with mutual authentication between an app and a collector, and between an agent and a gateway, with
certificates made by the test (trustme) and the real collector running
collector/testdata/valid-tls-gateway.yaml and valid-tls-agent.yaml (docs/stack.md, "TLS and
authentication").

The app side uses only the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT/_CERTIFICATE/_CLIENT_KEY/
_CLIENT_CERTIFICATE) read through otel-llm's own pipeline. Controls: the same app without a client
certificate, or in plaintext, is refused by the gateway; an agent without one never delivers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import requests
import trustme
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm.configure import build_from_environment
from otel_llm.settings import load_settings
from otel_llm.stack import paths
from otel_llm.stack.run import free_ports
from tests.support.otlp_http_sink import OtlpHttpSink
from tests.support.poll import poll
from tests.support.senders import sdk_tracer_provider, unique_service

GATEWAY = paths.COLLECTOR_TESTDATA / "valid-tls-gateway.yaml"
AGENT = paths.COLLECTOR_TESTDATA / "valid-tls-agent.yaml"
REFUSED_EXPORT_TIMEOUT_S = 3


class Certificates:
    """A CA, the gateway's server certificate (for 127.0.0.1) and a client certificate, as PEM files."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        self.ca = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        self.server_cert, self.server_key = self._issue(ca, directory, "gateway", "127.0.0.1")
        self.client_cert, self.client_key = self._issue(ca, directory, "client", "agent.otel-llm.test")

    @staticmethod
    def _issue(ca: trustme.CA, directory: Path, name: str, identity: str) -> tuple[Path, Path]:
        issued = ca.issue_cert(identity)
        cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key


@contextmanager
def collector(binary: Path, config: Path, log: Path, **env: str) -> Iterator[str]:
    """Runs otelcol-llm with ``config`` until the block ends; yields its OTLP/gRPC address."""
    grpc_port, health_port = free_ports(2)
    variables = {"OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT": str(grpc_port),
                 "OTEL_LLM_STACK_COLLECTOR_HEALTH_PORT": str(health_port), **env}
    with log.open("w") as output:
        process = subprocess.Popen([str(binary), "--config", str(config)], env={"PATH": "/usr/bin:/bin",
                                   **variables}, stdout=output, stderr=subprocess.STDOUT)
    try:
        poll(lambda: requests.get(f"http://127.0.0.1:{health_port}/", timeout=1).ok, timeout=60,
             message=f"{config.name} healthy (log: {log})")
        yield f"127.0.0.1:{grpc_port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def certificates(tmp_path) -> Certificates:
    return Certificates(tmp_path)


@pytest.fixture()
def sink() -> Iterator[OtlpHttpSink]:
    receiver = OtlpHttpSink()
    yield receiver
    receiver.close()


@pytest.fixture()
def gateway(stack_binaries, certificates, sink, tmp_path) -> Iterator[str]:
    with collector(stack_binaries.collector, GATEWAY, tmp_path / "gateway.log",
                   OTEL_LLM_COLLECTOR_TLS_CERT_FILE=str(certificates.server_cert),
                   OTEL_LLM_COLLECTOR_TLS_KEY_FILE=str(certificates.server_key),
                   OTEL_LLM_COLLECTOR_TLS_CLIENT_CA_FILE=str(certificates.ca),
                   OTEL_LLM_COLLECTOR_DOWNSTREAM_ENDPOINT=sink.endpoint) as address:
        yield address


def _services(sink: OtlpHttpSink) -> set[str]:
    return {resource.get("service.name") for resource, _ in sink.spans()}


def _one_span(exporter: OTLPSpanExporter, service: str) -> SpanExportResult:
    """Makes one finished span of ``service`` and exports it with ``exporter``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("tls").start_span("POST /api/v1/chat").end()
    return exporter.export(memory.get_finished_spans())


def test_app_reaches_the_gateway_over_mutual_tls_with_the_standard_variables(gateway, certificates, sink,
                                                                               monkeypatch):
    """OTEL_EXPORTER_OTLP_ENDPOINT=https://... with the CA, client key and certificate, through otel-llm's
    pipeline: the span passes the gateway's client check and arrives downstream."""
    service = unique_service("tls-app")
    for name, value in {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
                        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://{gateway}",
                        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(certificates.ca),
                        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(certificates.client_key),
                        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(certificates.client_cert)}.items():
        monkeypatch.setenv(name, value)
    telemetry = build_from_environment(load_settings({"OTEL_LLM_ROLLUP_WINDOW_MS": "0"}),
                                       resource=Resource.create({"service.name": service}))
    telemetry.tracer_provider.get_tracer("tls").start_span("POST /api/v1/chat").end()
    assert telemetry.force_flush(30_000)
    telemetry.shutdown()
    poll(lambda: service in _services(sink), timeout=60, message="the span behind the gateway")


@pytest.mark.parametrize("how", ["tls without a client certificate", "plaintext"])
def test_a_client_without_a_certificate_is_refused(gateway, certificates, sink, how):
    """Control: server-authenticated TLS alone, or plaintext, cannot export through the gateway; a client
    with the certificate can, to the same gateway, in the same test."""
    if how == "plaintext":
        refused = OTLPSpanExporter(endpoint=gateway, insecure=True, timeout=REFUSED_EXPORT_TIMEOUT_S)
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=certificates.ca.read_bytes())
        refused = OTLPSpanExporter(endpoint=gateway, credentials=credentials,
                                   timeout=REFUSED_EXPORT_TIMEOUT_S)
    refused_service, allowed_service = unique_service("tls-refused"), unique_service("tls-allowed")
    assert _one_span(refused, refused_service) is SpanExportResult.FAILURE

    allowed = OTLPSpanExporter(endpoint=gateway, credentials=grpc.ssl_channel_credentials(
        certificates.ca.read_bytes(), certificates.client_key.read_bytes(),
        certificates.client_cert.read_bytes()))
    assert _one_span(allowed, allowed_service) is SpanExportResult.SUCCESS
    poll(lambda: allowed_service in _services(sink), timeout=60, message="the allowed span downstream")
    assert refused_service not in _services(sink)


def _agent_env(gateway: str, certificates: Certificates, with_client_certificate: bool) -> dict[str, str]:
    env = {"OTEL_LLM_COLLECTOR_GATEWAY_ENDPOINT": gateway,
           "OTEL_LLM_COLLECTOR_TLS_CA_FILE": str(certificates.ca)}
    if with_client_certificate:
        env.update(OTEL_LLM_COLLECTOR_TLS_CERT_FILE=str(certificates.client_cert),
                   OTEL_LLM_COLLECTOR_TLS_KEY_FILE=str(certificates.client_key))
    return env


def test_agent_forwards_to_the_gateway_over_mutual_tls(stack_binaries, gateway, certificates, sink, tmp_path):
    """App -> agent (loopback, plain) -> gateway (mutual TLS) -> downstream: the span arrives."""
    service = unique_service("tls-agent")
    with collector(stack_binaries.collector, AGENT, tmp_path / "agent.log",
                   **_agent_env(gateway, certificates, with_client_certificate=True)) as agent:
        provider = sdk_tracer_provider(agent, service)
        provider.get_tracer("tls").start_span("POST /api/v1/chat").end()
        provider.shutdown()
        poll(lambda: service in _services(sink), timeout=60, message="the span through agent and gateway")


def test_an_agent_without_a_client_certificate_never_delivers(stack_binaries, gateway, certificates, sink,
                                                              tmp_path):
    """Control: the same agent without its certificate fails every handshake (its log says so, again and
    again) and nothing of its service arrives downstream."""
    service, log = unique_service("tls-agent-refused"), tmp_path / "agent.log"
    with collector(stack_binaries.collector, AGENT, log,
                   **_agent_env(gateway, certificates, with_client_certificate=False)) as agent:
        provider = sdk_tracer_provider(agent, service)
        provider.get_tracer("tls").start_span("POST /api/v1/chat").end()
        provider.shutdown()
        poll(lambda: log.read_text().count("Exporting failed") >= 2, timeout=60,
             message="the agent's export failing at least twice (log)")
    assert service not in _services(sink)
