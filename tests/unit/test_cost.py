"""Per-call cost: catalogue prices, the price file, unpriced calls, roll-up sums and the cost metrics."""

from __future__ import annotations

import logging
import sys

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import semconv
from otel_llm.configure import build_telemetry
from otel_llm.processors import cost
from otel_llm.processors.cost import Cost, Pricer, load_price_file, pricer_from_file
from otel_llm.processors.normalize import LLMCall
from otel_llm.settings import Settings, load_settings
from tests.support.metric_points import metric_points

BEDROCK_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
AZURE_HOST = "myres.openai.azure.com"


def call(provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=500, **parts) -> LLMCall:
    return LLMCall(provider, model, parts.pop("operation", "chat"), input_tokens, output_tokens,
                   parts.pop("error_type", None), 1.0, None, "test", **parts)


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


class TestCataloguePrices:
    """Known list prices (USD per million tokens) of the genai-prices catalogue."""

    def test_openai(self, pricer):
        """gpt-4o-mini: $0.15 in, $0.60 out."""
        assert pricer.cost(call(), {}) == Cost(pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6), "USD", "local")

    def test_bedrock_claude_model_id(self, pricer):
        """A Bedrock model id (vendor prefix, version suffix) finds Claude 3 Haiku on Bedrock: $0.25/$1.25."""
        priced = pricer.cost(call("aws.bedrock", BEDROCK_HAIKU), {})
        assert priced.amount == pytest.approx(1000 * 0.25e-6 + 500 * 1.25e-6)
        cross_region = pricer.cost(call("aws.bedrock", "us." + BEDROCK_HAIKU), {})
        assert cross_region.amount == priced.amount

    def test_azure_openai(self, pricer):
        """azure.ai.openai is the catalogue's azure provider (global deployment prices)."""
        priced = pricer.cost(call("azure.ai.openai", "gpt-4o-mini"), {})
        assert priced.amount == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)

    def test_cached_input_tokens_at_the_cache_read_rate(self, pricer):
        """600 of 1000 input tokens read from cache cost $0.075 per million instead of $0.15."""
        priced = pricer.cost(call(cache_read_input_tokens=600), {})
        assert priced.amount == pytest.approx((400 * 0.15 + 600 * 0.075 + 500 * 0.6) / 1e6)

    def test_cache_counts_beside_the_input_count(self, pricer):
        """Cached tokens exceeding the input count were reported beside it: each priced at its own rate."""
        priced = pricer.cost(call(input_tokens=100, cache_read_input_tokens=600), {})
        assert priced.amount == pytest.approx((100 * 0.15 + 600 * 0.075 + 500 * 0.6) / 1e6)

    @pytest.mark.parametrize(("provider_id", "provider", "model"), [
        ("openai", "openai", "gpt-4o-mini"),
        ("openai", "openai", "o3-mini"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
        ("aws", "aws.bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("azure", "azure.ai.openai", "gpt-4.1-nano"),
    ])
    def test_fast_rates_agree_with_the_catalogue_calculation(self, pricer, provider_id, provider, model):
        """The cached float rates give the catalogue's own calc_price result for input, cache and output."""
        priced = pricer.cost(call(provider, model, 5000, 700, cache_read_input_tokens=1200,
                                  cache_write_input_tokens=300, reasoning_output_tokens=200), {})
        expected = calc_price(Usage(input_tokens=5000, output_tokens=700, cache_read_tokens=1200,
                                    cache_write_tokens=300, output_reasoning_tokens=200),
                              model, provider_id=provider_id)
        assert priced.amount == pytest.approx(float(expected.total_price), rel=1e-9)

    def test_embeddings_need_no_output_count(self, pricer):
        """An embeddings call reports input tokens only and is priced."""
        embedding = call(model="text-embedding-3-small", output_tokens=None, operation="embeddings")
        priced = pricer.cost(embedding, {})
        assert priced.amount == pytest.approx(1000 * 0.02e-6)


class TestReportedCost:
    def test_the_providers_own_cost_wins(self, pricer):
        """A cost the span carries under the proposal's name is kept, source provider."""
        attributes = {semconv.GEN_AI_USAGE_COST_AMOUNT: 0.5, semconv.GEN_AI_USAGE_COST_CURRENCY: "EUR"}
        assert pricer.cost(call(), attributes) == Cost(0.5, "EUR", "provider")

    def test_a_reported_cost_without_currency_is_usd(self, pricer):
        assert pricer.cost(call(), {semconv.COST_AMOUNT: 2}) == Cost(2.0, "USD", "provider")


class TestUnpriced:
    def test_unknown_model_has_no_amount_and_one_warning_naming_it(self, caplog):
        """Two calls of an unknown model: no amount, a currency, the reason, one warning with the model."""
        pricer = Pricer()
        with caplog.at_level(logging.WARNING, logger=cost.__name__):
            first = pricer.cost(call(model="my-finetune-7"), {})
            second = pricer.cost(call(model="my-finetune-7"), {})
        assert first == second == Cost(None, "USD", "local", cost.UNKNOWN_MODEL)
        assert first.attributes() == {}
        warnings = [r for r in caplog.records if "my-finetune-7" in r.getMessage()]
        assert len(warnings) == 1

    def test_provider_without_catalogue_id_is_unknown(self, pricer):
        assert pricer.cost(call("ollama", "llama3"), {}).unpriced == cost.UNKNOWN_MODEL

    def test_missing_token_counts(self, pricer):
        assert pricer.cost(call(input_tokens=None), {}).unpriced == cost.MISSING_TOKENS
        assert pricer.cost(call(output_tokens=None), {}).unpriced == cost.MISSING_TOKENS

    def test_catalogue_that_cannot_be_loaded(self, monkeypatch, caplog):
        """With genai-prices not importable every call is unpriced (catalogue_unavailable), nothing raises."""
        monkeypatch.setitem(sys.modules, "genai_prices", None)
        monkeypatch.setitem(sys.modules, "genai_prices.data_snapshot", None)
        with caplog.at_level(logging.WARNING, logger=cost.__name__):
            priced = Pricer().cost(call(), {})
        assert priced == Cost(None, "USD", "local", cost.CATALOGUE_UNAVAILABLE)
        assert "cannot be loaded" in caplog.text

    def test_a_failing_catalogue_is_contained(self, pricer, monkeypatch):
        """Whatever the lookup raises stays inside: the call is unpriced."""
        broken = Pricer()
        monkeypatch.setattr(broken, "_rates", lambda provider, model: 1 / 0)
        assert broken.cost(call(), {}).amount is None


PRICE_FILE = """
[[price]]
provider = "openai"
model = "gpt-4o-mini"
input_mtok = 0.10
output_mtok = 0.40
cache_read_mtok = 0.05

[[price]]
provider = "aws.bedrock"            # read like gen_ai.provider.name: aliases normalised
model_prefix = "eu.anthropic.claude-3-haiku"
currency = "eur"
input_mtok = 0.20
output_mtok = 1.00

[[price]]
provider = "ollama"
model = "llama3"
input_mtok = 0
output_mtok = 0
requests_kcount = 1.5
"""


class TestPriceFile:
    @pytest.fixture
    def price_file(self, tmp_path):
        path = tmp_path / "prices.toml"
        path.write_text(PRICE_FILE)
        return str(path)

    def test_negotiated_rate_wins_over_the_catalogue(self, price_file):
        pricer = Pricer(load_price_file(price_file))
        priced = pricer.cost(call(cache_read_input_tokens=200), {})
        assert priced == Cost(pytest.approx((800 * 0.10 + 200 * 0.05 + 500 * 0.40) / 1e6), "USD", "local")

    def test_prefix_entry_and_currency(self, price_file):
        pricer = Pricer(load_price_file(price_file))
        priced = pricer.cost(call("aws.bedrock", "eu." + BEDROCK_HAIKU), {})
        assert priced == Cost(pytest.approx((1000 * 0.20 + 500 * 1.0) / 1e6), "EUR", "local")
        # Other Bedrock ids still come from the catalogue.
        assert pricer.cost(call("aws.bedrock", BEDROCK_HAIKU), {}).currency == "USD"

    def test_a_model_the_catalogue_lacks_with_a_per_call_price(self, price_file):
        pricer = Pricer(load_price_file(price_file))
        assert pricer.cost(call("ollama", "llama3"), {}).amount == pytest.approx(0.0015)

    @pytest.mark.parametrize(("text", "message"), [
        ("[[price]]\nprovider='openai'\nmodel='x'\noutput_mtok=1", "'input_mtok' is required"),
        ("[[price]]\nprovider='openai'\nmodel='x'\nmodel_prefix='y'\ninput_mtok=1\noutput_mtok=1",
         "exactly one of"),
        ("[[price]]\nprovider='openai'\nmodel='x'\ninput_mtok=-1\noutput_mtok=1", "number >= 0"),
        ("[[price]]\nprovider='openai'\nmodel='x'\ninput_mtok=1\noutput_mtok=1\ncurrency='dollars'",
         "ISO 4217"),
        ("[[price]]\nprovider='openai'\nmodel='x'\ninput=1", "unknown field(s) input"),
        ("price = 1", "array of tables"),
        ("[[price]\n", "cannot read"),
    ])
    def test_invalid_files_name_the_rule(self, tmp_path, text, message):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_price_file(str(path))

    def test_an_unusable_file_warns_naming_the_variable_and_keeps_the_catalogue(self, tmp_path, caplog):
        with caplog.at_level(logging.WARNING, logger=cost.__name__):
            pricer = pricer_from_file(str(tmp_path / "missing.toml"))
        assert "OTEL_LLM_COST_PRICES_FILE" in caplog.text and "[[price]]" in caplog.text
        assert pricer.cost(call(), {}).amount == pytest.approx(0.00045)

    def test_the_variables_are_settings(self, price_file):
        settings = load_settings({"OTEL_LLM_COST": "false", "OTEL_LLM_COST_PRICES_FILE": price_file})
        assert settings.cost is False and settings.cost_prices_file == price_file


LLM = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
       semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_INPUT_TOKENS: 1000,
       semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 500, semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini",
       semconv.LANGGRAPH_NODE: "answer", "session.id": "s-1"}
FAST = Settings(rollup_window_ms=0)


class Pipeline:
    """build_telemetry with in-memory span exporter and metric reader: the configured pipeline."""

    def __init__(self, settings: Settings = FAST) -> None:
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.telemetry = build_telemetry(settings, resource=Resource.create({}),
                                         span_exporters=[self.exporter], metric_readers=[self.reader])
        self.tracer = self.telemetry.tracer_provider.get_tracer("test")

    def request(self, *calls: dict) -> dict:
        with self.tracer.start_as_current_span("POST /chat"):
            with self.tracer.start_as_current_span("graph"):
                for index, attributes in enumerate(calls):
                    with self.tracer.start_as_current_span(f"llm-{index}", attributes=attributes):
                        pass
        assert self.telemetry.force_flush()
        return {span.name: span.attributes for span in self.exporter.get_finished_spans()}


@pytest.fixture
def pipeline():
    built = Pipeline()
    yield built
    built.telemetry.shutdown()


class TestThroughThePipeline:
    def test_llm_spans_carry_their_cost_and_ancestors_the_sum(self, pipeline):
        """Each LLM span its own cost; the root and graph span the sum, never the per-call names."""
        spans = pipeline.request(LLM, {**LLM, semconv.GEN_AI_REQUEST_MODEL: "gpt-4.1-nano"})
        first = 1000 * 0.15e-6 + 500 * 0.6e-6
        second = 1000 * 0.1e-6 + 500 * 0.4e-6
        assert spans["llm-0"][semconv.COST_AMOUNT] == pytest.approx(first)
        assert spans["llm-0"][semconv.COST_CURRENCY] == "USD"
        assert spans["llm-0"][semconv.COST_SOURCE] == "local"
        assert spans["llm-1"][semconv.COST_AMOUNT] == pytest.approx(second)
        for ancestor in ("POST /chat", "graph"):
            assert spans[ancestor][semconv.ROLLUP_COST_AMOUNT] == pytest.approx(first + second)
            assert spans[ancestor][semconv.ROLLUP_COST_CURRENCY] == "USD"
            assert spans[ancestor][semconv.ROLLUP_UNPRICED_CALLS] == 0
            assert semconv.COST_AMOUNT not in spans[ancestor]

    def test_an_unpriced_call_is_counted_on_the_roll_up(self, pipeline):
        spans = pipeline.request(LLM, {**LLM, semconv.GEN_AI_REQUEST_MODEL: "my-finetune"})
        assert semconv.COST_AMOUNT not in spans["llm-1"]
        assert spans["POST /chat"][semconv.ROLLUP_UNPRICED_CALLS] == 1
        assert spans["POST /chat"][semconv.ROLLUP_COST_AMOUNT] == pytest.approx(0.00045)

    def test_mixed_currencies_are_not_added(self, pipeline):
        spans = pipeline.request(LLM, {**LLM, semconv.GEN_AI_USAGE_COST_AMOUNT: 0.01,
                                       semconv.GEN_AI_USAGE_COST_CURRENCY: "EUR"})
        assert semconv.ROLLUP_COST_AMOUNT not in spans["POST /chat"]
        assert spans["POST /chat"][semconv.ROLLUP_COST_CURRENCY] == "EUR,USD"

    def test_cost_metrics_by_provider_model_arm_node(self, pipeline):
        """One counter point per call, labelled by provider, model, arm, node, currency; no session."""
        pipeline.request(LLM, LLM, {**LLM, semconv.GEN_AI_REQUEST_MODEL: "my-finetune"})
        ((labels, point),) = metric_points(pipeline.reader, semconv.METRIC_COST)
        assert point.value == pytest.approx(2 * 0.00045)
        assert labels[semconv.GEN_AI_PROVIDER_NAME] == "openai"
        assert labels[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
        assert labels[semconv.EXPERIMENT_ARM] == "openai:gpt-4o-mini"
        assert labels[semconv.LANGGRAPH_NODE] == "answer"
        assert labels[semconv.COST_CURRENCY] == "USD"
        assert "session.id" not in labels
        ((labels, point),) = metric_points(pipeline.reader, semconv.METRIC_UNPRICED_CALLS)
        assert point.value == 1
        assert labels[semconv.COST_UNPRICED_REASON] == cost.UNKNOWN_MODEL
        assert labels[semconv.GEN_AI_REQUEST_MODEL] == "my-finetune"

    def test_cost_series_are_capped(self):
        """Past the series cap new models land on the overflow series, with the provider kept."""
        capped = Pipeline(Settings(rollup_window_ms=0, metrics_cardinality_limit=2))
        try:
            capped.request(*({**LLM, semconv.EXPERIMENT_ARM: f"arm-{i}"} for i in range(4)))
            series = metric_points(capped.reader, semconv.METRIC_COST)
        finally:
            capped.telemetry.shutdown()
        assert len(series) == 3
        overflow = [labels for labels, _ in series if labels.get(semconv.OTEL_METRIC_OVERFLOW)]
        assert overflow == [{semconv.OTEL_METRIC_OVERFLOW: True, semconv.GEN_AI_PROVIDER_NAME: "openai"}]

    def test_control_without_cost(self):
        """OTEL_LLM_COST=false: no cost attribute, no roll-up cost, no cost metric."""
        plain = Pipeline(Settings(rollup_window_ms=0, cost=False))
        try:
            spans = plain.request(LLM)
            assert semconv.COST_AMOUNT not in spans["llm-0"]
            assert semconv.ROLLUP_COST_AMOUNT not in spans["POST /chat"]
            assert semconv.ROLLUP_CALLS in spans["POST /chat"]
            assert metric_points(plain.reader, semconv.METRIC_COST) == []
        finally:
            plain.telemetry.shutdown()

    def test_azure_host_is_priced_as_azure(self, pipeline):
        """openai-v2 says openai for an Azure client; the host makes it azure.ai.openai, priced as Azure."""
        spans = pipeline.request({**LLM, semconv.SERVER_ADDRESS: AZURE_HOST})
        assert spans["llm-0"][semconv.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
        assert spans["llm-0"][semconv.COST_AMOUNT] == pytest.approx(0.00045)
