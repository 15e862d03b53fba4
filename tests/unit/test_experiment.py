"""Experiments: arm parsing, weighted deterministic assignment, baggage and span attributes, fallbacks."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import Counter

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import experiment, semconv
from otel_llm.settings import load_settings, reset_warnings
from tests.support.metric_points import metric_points

BEDROCK_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ARMS_ENV = f"openai:gpt-4o-mini=50,aws.bedrock:{BEDROCK_HAIKU}=50"


@pytest.fixture(autouse=True)
def fresh_context():
    """Each test starts with no current span or baggage, whatever an earlier test left attached."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


class TestParsing:
    def test_parses_provider_model_weight_with_colons_in_model(self):
        """The provider ends at the first ':', the weight after the last '='; model ids keep their colons."""
        arms = experiment.parse_arms(ARMS_ENV)
        assert [(a.provider, a.model, a.weight) for a in arms] == [
            ("openai", "gpt-4o-mini", 50.0),
            ("aws.bedrock", BEDROCK_HAIKU, 50.0),
        ]
        assert arms[1].name == f"aws.bedrock:{BEDROCK_HAIKU}"

    def test_provider_alias_normalised_and_weight_defaults_to_one(self):
        """Provider aliases become canonical names; a missing weight is 1."""
        (arm,) = experiment.parse_arms(" amazon_bedrock:amazon.nova-lite-v1:0 ")
        assert (arm.provider, arm.model, arm.weight) == ("aws.bedrock", "amazon.nova-lite-v1:0", 1.0)

    @pytest.mark.parametrize(
        "text", ["openai", "openai:gpt=abc", "openai:gpt=-1", ":gpt=1", "openai:=1", "openai:gpt=inf"]
    )
    def test_bad_entries_raise_value_error(self, text):
        """Entries without provider:model or with a bad weight are refused, naming the entry."""
        with pytest.raises(ValueError, match="arm"):
            experiment.parse_arms(text)

    def test_experiment_validates_arms(self):
        """Duplicate arms, no arms, all-zero weights and an empty id are refused at construction."""
        arm = experiment.Arm("openai", "gpt-4o")
        for args in (
            ("x", [arm, arm]),
            ("x", []),
            ("x", [experiment.Arm("openai", "gpt-4o", 0.0)]),
            ("", [arm]),
        ):
            with pytest.raises(ValueError):
                experiment.Experiment(*args)


class TestAssignment:
    def test_same_key_same_arm(self):
        """A key always gets the same arm."""
        exp = experiment.Experiment("exp1", experiment.parse_arms(ARMS_ENV))
        assert len({exp.assign("user-42").name for _ in range(20)}) == 1

    def test_stable_across_processes(self):
        """Another Python process (different hash seed) assigns the same arms."""
        exp = experiment.Experiment("exp1", experiment.parse_arms(ARMS_ENV))
        here = [exp.assign(f"user-{i}").name for i in range(50)]
        code = (
            "from otel_llm import experiment as e\n"
            f"x = e.Experiment('exp1', e.parse_arms({ARMS_ENV!r}))\n"
            "print('\\n'.join(x.assign(f'user-{i}').name for i in range(50)))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": "12345"},
        )
        assert out.stdout.splitlines() == here

    def test_weights_shape_the_split(self):
        """A 90/10 split gives about 90% of 4000 keys to the first arm."""
        exp = experiment.Experiment("exp", experiment.parse_arms("openai:a=90,openai:b=10"))
        counts = Counter(exp.assign(i).model for i in range(4000))
        assert 0.87 < counts["a"] / 4000 < 0.93

    def test_zero_weight_arm_never_chosen(self):
        """An arm with weight 0 gets no keys."""
        exp = experiment.Experiment("exp", experiment.parse_arms("openai:a=1,openai:b=0"))
        assert {exp.assign(i).model for i in range(500)} == {"a"}

    def test_experiment_id_changes_assignment(self):
        """Different experiment ids shuffle keys independently."""
        arms = experiment.parse_arms("openai:a,openai:b")
        one, two = experiment.Experiment("e1", arms), experiment.Experiment("e2", arms)
        assert [one.assign(i) for i in range(100)] != [two.assign(i) for i in range(100)]

    @pytest.mark.parametrize("key", [None, "", 12, b"bytes", "k" * 100_000])
    def test_odd_keys_get_an_arm(self, key):
        """None, empty, non-string and huge keys all get an arm."""
        exp = experiment.Experiment("exp", experiment.parse_arms(ARMS_ENV))
        assert exp.assign(key) in exp.arms


class TestFromEnv:
    def test_unset_means_no_experiment(self):
        """Without OTEL_LLM_EXPERIMENT_ARMS there is no experiment."""
        assert experiment.experiment_from_env({}) is None

    def test_env_experiment(self):
        """The id and arms come from the env; the id defaults to 'default'."""
        exp = experiment.experiment_from_env(
            {"OTEL_LLM_EXPERIMENT_ID": "ab1", "OTEL_LLM_EXPERIMENT_ARMS": ARMS_ENV}
        )
        assert exp.experiment_id == "ab1" and len(exp.arms) == 2
        assert (
            experiment.experiment_from_env({"OTEL_LLM_EXPERIMENT_ARMS": ARMS_ENV}).experiment_id == "default"
        )

    def test_bad_env_warns_once_and_is_off(self, caplog):
        """A bad arms value gives one warning naming the variable and the accepted form, and no experiment."""
        reset_warnings()
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert experiment.experiment_from_env({"OTEL_LLM_EXPERIMENT_ARMS": "openai=5"}) is None
        warnings = [r.getMessage() for r in caplog.records if "OTEL_LLM_EXPERIMENT_ARMS" in r.getMessage()]
        assert len(warnings) == 1 and "provider:model" in warnings[0]


@pytest.fixture
def tracing():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("t"), exporter


class TestExperimentArm:
    def test_arm_in_baggage_and_on_current_span(self, tracing):
        """Inside the block baggage holds id, arm and the assigned provider and model, and the current span
        has them as attributes; after the block, baggage has none."""
        tracer, exporter = tracing
        exp = experiment.Experiment("ab1", experiment.parse_arms(ARMS_ENV))
        expected = {
            semconv.EXPERIMENT_ID: "ab1",
            semconv.EXPERIMENT_ARM: exp.assign("user-7").name,
            semconv.EXPERIMENT_PROVIDER: exp.assign("user-7").provider,
            semconv.EXPERIMENT_MODEL: exp.assign("user-7").model,
        }
        with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER):
            with experiment.experiment_arm(exp, "user-7") as arm:
                assert dict(baggage.get_all()) == expected
                assert (arm.provider, arm.model) == (
                    expected[semconv.EXPERIMENT_PROVIDER],
                    expected[semconv.EXPERIMENT_MODEL],
                )
            assert baggage.get_all() == {}
        (span,) = exporter.get_finished_spans()
        assert {key: span.attributes[key] for key in expected} == expected

    def test_no_experiment_yields_none(self):
        """Without an experiment the block runs with no arm and no baggage."""
        with experiment.experiment_arm(None, "user") as arm:
            assert arm is None and baggage.get_baggage(semconv.EXPERIMENT_ARM) is None

    def test_without_a_span_still_sets_baggage(self):
        """With no current span the arm still goes into baggage."""
        exp = experiment.Experiment("ab1", experiment.parse_arms("openai:gpt-4o"))
        assert trace.get_current_span().is_recording() is False
        with experiment.experiment_arm(exp, "k") as arm:
            assert baggage.get_baggage(semconv.EXPERIMENT_ARM) == arm.name == "openai:gpt-4o"


def root_with(tracer, attributes, parent_local=False):
    if parent_local:
        with tracer.start_as_current_span("parent"):
            with tracer.start_as_current_span("child", attributes=attributes):
                pass
    else:
        with tracer.start_as_current_span("job", kind=SpanKind.CONSUMER, attributes=attributes):
            pass


class TestFallback:
    def run(self, tracing, attributes, parent_local=False):
        tracer, exporter = tracing
        root_with(tracer, attributes, parent_local)
        reader = InMemoryMetricReader()
        sink = InMemorySpanExporter()
        wrapper = experiment.ExperimentFallbackExporter(sink, MeterProvider(metric_readers=[reader]))
        wrapper.export(exporter.get_finished_spans())
        data = reader.get_metrics_data()
        points = [
            p
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == experiment.FALLBACK_COUNTER
            for p in m.data.data_points
        ]
        return sink.get_finished_spans(), points

    def test_fallback_marked_and_counted(self, tracing):
        """A root assigned Bedrock whose calls used only OpenAI gets the attribute and one count."""
        spans, points = self.run(
            tracing,
            {
                semconv.EXPERIMENT_ID: "ab1",
                semconv.EXPERIMENT_ARM: f"aws.bedrock:{BEDROCK_HAIKU}",
                semconv.ROLLUP_PROVIDER: "openai",
                semconv.ROLLUP_MODELS: ("gpt-4o-mini",),
            },
        )
        assert spans[0].attributes[semconv.EXPERIMENT_FALLBACK] is True
        (point,) = points
        assert point.value == 1
        assert dict(point.attributes) == {
            semconv.EXPERIMENT_ID: "ab1",
            semconv.EXPERIMENT_ARM: f"aws.bedrock:{BEDROCK_HAIKU}",
            semconv.GEN_AI_PROVIDER_NAME: "openai",
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        }

    def test_arm_model_among_models_is_not_fallback(self, tracing):
        """A root whose calls include its arm's model (plus others) is not a fallback."""
        spans, points = self.run(
            tracing,
            {
                semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini",
                semconv.ROLLUP_MODEL: f"{BEDROCK_HAIKU},gpt-4o-mini",
            },
        )
        assert semconv.EXPERIMENT_FALLBACK not in spans[0].attributes and points == []

    def test_same_model_from_another_provider_is_a_fallback(self, tracing):
        """The arm's model id served by another provider (OpenAI's model on Azure) is a fallback too."""
        spans, points = self.run(
            tracing,
            {
                semconv.EXPERIMENT_ID: "ab1",
                semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini",
                semconv.EXPERIMENT_PROVIDER: "openai",
                semconv.EXPERIMENT_MODEL: "gpt-4o-mini",
                semconv.ROLLUP_PROVIDERS: ("azure.ai.openai",),
                semconv.ROLLUP_MODELS: ("gpt-4o-mini",),
            },
        )
        assert spans[0].attributes[semconv.EXPERIMENT_FALLBACK] is True
        (point,) = points
        assert point.attributes[semconv.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"

    def test_provider_compared_from_the_arm_name_without_assigned_attributes(self, tracing):
        """Without llm.experiment.provider/model the arm name gives the assigned pair (alias normalised)."""
        spans, points = self.run(
            tracing,
            {
                semconv.EXPERIMENT_ARM: f"bedrock:{BEDROCK_HAIKU}",
                semconv.ROLLUP_PROVIDER: "anthropic",
                semconv.ROLLUP_MODEL: BEDROCK_HAIKU,
            },
        )
        assert spans[0].attributes[semconv.EXPERIMENT_FALLBACK] is True and len(points) == 1

    def test_arm_provider_and_model_among_several_is_not_fallback(self, tracing):
        """A root whose calls used the arm's provider and model plus another pair is not a fallback."""
        spans, points = self.run(
            tracing,
            {
                semconv.EXPERIMENT_ARM: f"aws.bedrock:{BEDROCK_HAIKU}",
                semconv.ROLLUP_PROVIDER: "aws.bedrock,openai",
                semconv.ROLLUP_MODEL: f"{BEDROCK_HAIKU},gpt-4o-mini",
            },
        )
        assert semconv.EXPERIMENT_FALLBACK not in spans[0].attributes and points == []

    def test_no_rollup_or_no_arm_or_not_root_is_ignored(self, tracing):
        """Spans without calls, without an arm, or with a local parent are never fallbacks."""
        for attributes, parent_local in (
            ({semconv.EXPERIMENT_ARM: "openai:gpt-4o"}, False),
            ({semconv.ROLLUP_MODEL: "gpt-4o"}, False),
            ({semconv.EXPERIMENT_ARM: "openai:x", semconv.ROLLUP_MODEL: "gpt-4o"}, True),
            ({semconv.EXPERIMENT_ARM: 17, semconv.ROLLUP_MODEL: "gpt-4o"}, False),
        ):
            spans, points = self.run(tracing, attributes, parent_local)
            assert points == [] and all(semconv.EXPERIMENT_FALLBACK not in s.attributes for s in spans)
            tracing[1].clear()

    def test_invalid_inner_rejected(self):
        """The wrapper needs an exporter."""
        with pytest.raises(ValueError, match="inner"):
            experiment.ExperimentFallbackExporter(object())


class TestConfigureWiring:
    def test_wrapper_only_inside_an_experiment(self):
        """with_fallback_detection wraps only when OTEL_LLM_EXPERIMENT_ID or _ARMS is set."""
        sink = InMemorySpanExporter()
        detection = experiment.with_fallback_detection
        assert detection(sink, load_settings({})) is sink
        assert detection(sink, load_settings({"OTEL_LLM_EXPERIMENT_ID": " "})) is sink
        wrapped = detection(sink, load_settings({"OTEL_LLM_EXPERIMENT_ARMS": ARMS_ENV}))
        assert isinstance(wrapped, experiment.ExperimentFallbackExporter)

    def test_configured_pipeline_marks_a_fallback_root(self, monkeypatch):
        """Through configure's pipeline (baggage, roll-up, fallback stage) a root whose call missed its arm's
        model leaves with llm.experiment.fallback=true."""
        from otel_llm.configure import build_from_environment
        from otel_llm.settings import load_settings

        monkeypatch.setenv("OTEL_LLM_EXPERIMENT_ID", "ab1")
        reader = InMemoryMetricReader()
        sink = InMemorySpanExporter()
        telemetry = build_from_environment(load_settings(), span_exporters=[sink], metric_readers=[reader])
        tracer = telemetry.tracer_provider.get_tracer("t")
        arm_context = baggage.set_baggage(semconv.EXPERIMENT_ARM, f"aws.bedrock:{BEDROCK_HAIKU}")
        with tracer.start_as_current_span("job", context=arm_context, kind=SpanKind.CONSUMER):
            with tracer.start_as_current_span(
                "ChatOpenAI",
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                },
            ):
                pass
        telemetry.force_flush()
        counted = metric_points(reader, experiment.FALLBACK_COUNTER)  # configure's provider
        telemetry.shutdown()
        roots = [s for s in sink.get_finished_spans() if s.name == "job"]
        assert roots and roots[0].attributes[semconv.EXPERIMENT_FALLBACK] is True
        assert [point.value for _, point in counted] == [1]
