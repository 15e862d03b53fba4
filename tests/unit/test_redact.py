"""Export-side redaction (otel_llm.processors.redact) with the rules of otel_llm.redaction, through the real
pipeline build_telemetry assembles, and the same table rendered for the collector."""

from __future__ import annotations

import logging

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_llm import redaction
from otel_llm.configure import build_telemetry
from otel_llm.processors.redact import RedactingSpanExporter, Redactor
from otel_llm.settings import load_settings, reset_warnings
from tests.support.fuzz import fuzz_settings

MARKER = redaction.MARKER
# One planted secret per value rule, in the context it is met in (a provider error, a URL, a header...).
SECRETS: dict[str, tuple[str, str]] = {
    # rule name: (text holding the secret, the secret)
    "openai_key": ("Error code: 401 - Incorrect API key provided: {s}.", "sk-proj-Ab3dEf6hIj9kLm2nOp5q"),
    "anthropic_key": ("anthropic key {s} rejected", "sk-ant-api03-xYz123456789"),
    "langsmith_key": ("LANGSMITH key={s}", "lsv2_pt_0123456789abcdef0123456789"),
    "aws_access_key_id": ("InvalidClientTokenId: {s} is not valid", "AKIAIOSFODNN7EXAMPLE"),
    "aws_session_key_id": ("caller {s}", "ASIAY34FZKBOKMUTVV7A"),
    "aws_secret_access_key": ("aws_secret_access_key = {s}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "jwt": ("id {s} expired", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"),
    "github_token": ("token {s}", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    "google_api_key": ("https://g.example/v1?alt=json&k={s}", "AIzaSyD-abcdefghijklmnopqrstuvwxyz12345"),
    "bearer": ("Authorization: Bearer {s}", "opaque.token-value_123"),
    "url_userinfo": ("http://user:{s}@langsmith.internal:1984/api", "Pa55word"),
    "query_parameter": ("https://api.example.com/v1/chat?model=x&key={s}&stream=1", "plainvalue99"),
    "signed_url": ("https://b.s3.amazonaws.com/o?X-Amz-Signature={s}", "f00dfeedbeef"),
    "secret_assignment": ('{{"password": "{s}", "user": "bob"}}', "hunter2hunter2"),
}
# Values that look like none of the rules and must pass unchanged.
NOT_SECRETS = (
    "gpt-4o-mini", "anthropic.claude-3-haiku-20240307-v1:0", "max_tokens=512", "tokenizer: cl100k",
    "https://api.openai.com/v1/chat/completions?stream=true", "POST /api/v1/chat", "sk-short",
    "4bf92f3577b34da6a3ce929d0e0e4736", "the key point is brevity", "user@example.com",
)


def _planted(rule: str) -> str:
    template, secret = SECRETS[rule]
    return template.format(s=secret)


REDACTOR = Redactor()


@pytest.fixture()
def redactor() -> Redactor:
    return REDACTOR


class TestValueRules:
    @pytest.mark.parametrize("rule", sorted(SECRETS))
    def test_each_planted_secret_is_masked_and_its_context_kept(self, redactor, rule):
        """The secret is gone, the marker is there, and the text around it is unchanged."""
        template, secret = SECRETS[rule]
        redacted = redactor.value(template.format(s=secret))
        assert secret not in redacted and MARKER in redacted
        assert redactor.value(redacted) == redacted  # nothing left to find

    @pytest.mark.parametrize("text", NOT_SECRETS)
    def test_ordinary_values_pass_as_the_same_object(self, redactor, text):
        """Model ids, token counts, plain URLs and ids are not secrets: returned as they are."""
        assert redactor.value(text) is text

    def test_prefixes_and_suffixes_stay_readable(self, redactor):
        """A bearer keeps its scheme, a URL its scheme and host, a query its parameter name."""
        assert redactor.value("Bearer abcdefgh12345") == f"Bearer {MARKER}"
        assert redactor.value("http://u:p@h:1/x") == f"http://{MARKER}@h:1/x"
        assert redactor.value("/cb?code=xyz&state=1") == f"/cb?code={MARKER}&state=1"

    @given(st.text(max_size=300), st.sampled_from(sorted(SECRETS)), st.text(max_size=300))
    @fuzz_settings()
    def test_a_secret_in_any_text_is_masked_and_masking_is_idempotent(self, prefix, rule, suffix):
        """Whatever text surrounds a planted secret (a space apart), it leaves; a second pass is a no-op."""
        secret = SECRETS[rule][1]
        assume(secret not in prefix and secret not in suffix)
        redacted = REDACTOR.value(f"{prefix} {_planted(rule)} {suffix}")
        assert secret not in redacted
        assert REDACTOR.value(redacted) == redacted


class TestSecretKeys:
    @pytest.mark.parametrize("key", [
        "langsmith.metadata.api_key", "langsmith.metadata.OPENAI_API_KEY", "langsmith.metadata.db_password",
        "langsmith.metadata.x-auth-token", "langsmith.metadata.client_secret", "langsmith.metadata.apiKey",
        "http.request.header.authorization", "http.response.header.set-cookie",
    ])
    def test_secret_named_metadata_and_headers_are_secret_keys(self, redactor, key):
        """Run metadata, env-var copies and headers named like secrets lose their whole value."""
        assert redactor.is_secret_key(key)

    @pytest.mark.parametrize("key", [
        "langsmith.metadata.ls_max_tokens", "langsmith.metadata.langgraph_node", "langsmith.metadata.monkey",
        "langsmith.metadata.author", "gen_ai.usage.input_tokens", "api_key",  # not a free-form scope
    ])
    def test_other_keys_are_not(self, redactor, key):
        """Token counts, node names and keys outside the free-form scopes are read by value only."""
        assert not redactor.is_secret_key(key)

    def test_extra_key_words_and_patterns_extend_the_rules(self):
        """OTEL_LLM_REDACT_KEYS / _PATTERNS add words and regexes to the built-in ones."""
        redactor = Redactor(extra_key_words=("tenant",), extra_patterns=(r"acct-\d{6}",))
        assert redactor.is_secret_key("langsmith.metadata.tenant_id")
        assert redactor.value("account acct-123456 ok") == f"account {MARKER} ok"
        assert redactor.value("sk-ant-api03-abcdefghij") == MARKER  # built-ins still apply


def _pipeline(environ: dict[str, str] | None = None):
    exporter = InMemorySpanExporter()
    telemetry = build_telemetry(load_settings({"OTEL_LLM_ROLLUP_WINDOW_MS": "0", **(environ or {})}),
                                resource=Resource.create({}), span_exporters=[exporter], metric_readers=[])
    return telemetry, exporter


def _failing_llm_call(telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    try:
        with tracer.start_as_current_span("ChatOpenAI", attributes={
            "langsmith.metadata.api_key": "not-shaped-like-a-key",
            "langsmith.metadata.LANGSMITH_ENDPOINT": _planted("url_userinfo"),
            "url.full": _planted("query_parameter"),
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "tags": ["ok", _planted("openai_key")],
        }):
            raise PermissionError(_planted("openai_key"))
    except PermissionError:
        pass
    telemetry.force_flush()


def _everything(span) -> str:
    return repr((span.name, dict(span.attributes), span.status.description,
                 [(event.name, dict(event.attributes)) for event in span.events]))


class TestPipeline:
    def test_attributes_status_and_exception_events_leave_redacted(self):
        """configure()'s pipeline masks metadata, URLs, sequences, the status and the exception event."""
        telemetry, exporter = _pipeline()
        _failing_llm_call(telemetry)
        span, = exporter.get_finished_spans()
        text = _everything(span)
        for rule in ("openai_key", "url_userinfo", "query_parameter"):
            assert SECRETS[rule][1] not in text, rule
        assert "not-shaped-like-a-key" not in text
        assert span.attributes["langsmith.metadata.api_key"] == MARKER
        assert span.attributes["tags"] == ("ok", f"Error code: 401 - Incorrect API key provided: {MARKER}.")
        assert MARKER in span.status.description
        assert span.attributes["gen_ai.provider.name"] == "openai"  # the roll-up stage still ran
        telemetry.shutdown()

    def test_control_with_redaction_off_the_secrets_are_exported(self):
        """OTEL_LLM_REDACT=false: the same call exports every planted secret (what the stage removes)."""
        telemetry, exporter = _pipeline({"OTEL_LLM_REDACT": "false"})
        _failing_llm_call(telemetry)
        text = _everything(exporter.get_finished_spans()[0])
        for rule in ("openai_key", "url_userinfo", "query_parameter"):
            assert SECRETS[rule][1] in text, rule
        telemetry.shutdown()

    def test_span_names_are_redacted(self):
        """A name holding a URL with a secret query parameter is masked too (METRIC lines print names)."""
        telemetry, exporter = _pipeline()
        with telemetry.tracer_provider.get_tracer("app").start_as_current_span("GET /cb?code=abc123"):
            pass
        telemetry.force_flush()
        assert exporter.get_finished_spans()[0].name == f"GET /cb?code={MARKER}"
        telemetry.shutdown()

    def test_extra_patterns_from_the_environment(self):
        """OTEL_LLM_REDACT_PATTERNS (space-separated regexes) reaches the export stage."""
        telemetry, exporter = _pipeline({"OTEL_LLM_REDACT_PATTERNS": r"acct-\d{6} x{9}"})
        with telemetry.tracer_provider.get_tracer("app").start_as_current_span("s", attributes={
                "a": "acct-123456", "b": "xxxxxxxxx"}):
            pass
        telemetry.force_flush()
        assert dict(exporter.get_finished_spans()[0].attributes) == {"a": MARKER, "b": MARKER}
        telemetry.shutdown()

    def test_a_bad_pattern_warns_once_naming_the_variable(self, caplog):
        """An uncompilable OTEL_LLM_REDACT_PATTERNS: one warning, built-in rules only, nothing raised."""
        reset_warnings()
        with caplog.at_level(logging.WARNING):
            settings = load_settings({"OTEL_LLM_REDACT_PATTERNS": "ok ("})
            load_settings({"OTEL_LLM_REDACT_PATTERNS": "ok ("})
        assert settings.redact_patterns == ()
        warnings = [r.getMessage() for r in caplog.records if "OTEL_LLM_REDACT_PATTERNS" in r.getMessage()]
        assert len(warnings) == 1 and "regular expressions" in warnings[0]


class TestStage:
    def test_spans_without_secrets_pass_as_the_same_objects(self):
        """Nothing to redact: the exporter receives the very span objects (no copy)."""
        provider, inner = TracerProvider(), InMemorySpanExporter()
        seen = []
        stage = RedactingSpanExporter(inner, Redactor())
        provider.add_span_processor(SimpleSpanProcessor(stage))
        provider.add_span_processor(SimpleSpanProcessor(type("Spy", (InMemorySpanExporter,), {
            "export": lambda self, spans: seen.extend(spans) or SpanExportResult.SUCCESS})()))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("plain", attributes={"n": 1, "s": "text"}) as span:
            span.set_status(Status(StatusCode.ERROR, "timeout"))
        assert inner.get_finished_spans()[0] is seen[0]

    def test_an_unreadable_span_is_dropped_alone_and_counted(self, caplog):
        """A span whose attributes cannot be read is not exported (never unredacted); the others are."""
        provider, inner = TracerProvider(), InMemorySpanExporter()
        with provider.get_tracer("t").start_as_current_span("good") as good:
            pass
        with provider.get_tracer("t").start_as_current_span("bad") as bad:
            pass

        class Broken:
            def items(self):
                raise RuntimeError("unreadable")

        bad._attributes = Broken()
        stage = RedactingSpanExporter(inner, Redactor())
        with caplog.at_level(logging.WARNING):
            assert stage.export([good, bad, good]) is SpanExportResult.SUCCESS
        assert [span.name for span in inner.get_finished_spans()] == ["good", "good"]
        assert stage.drops.counts() == {"redaction_failed": 1}


class TestCollectorSide:
    def test_every_value_rule_compiles_as_go_compatible_syntax(self):
        """No look-around or back-references (RE2 has neither); the same text compiles in Python."""
        for rule in redaction.VALUE_RULES:
            assert "(?=" not in rule.pattern and "(?!" not in rule.pattern and "(?<" not in rule.pattern
            assert not any(f"\\{digit}" in rule.pattern for digit in "123456789")

    def test_the_transform_holds_one_statement_per_rule_and_place(self):
        """Attributes, status message and event attributes each get every value rule; keys the key rule."""
        span_group, event_group = redaction.transform_config()
        assert len(span_group["statements"]) == 1 + 2 * len(redaction.VALUE_RULES)
        assert len(event_group["statements"]) == len(redaction.VALUE_RULES)
        assert span_group["statements"][0].startswith("delete_matching_keys(span.attributes")
