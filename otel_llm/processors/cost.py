"""Per-call cost of LLM spans, on the export thread: what each model call cost, in which currency, from where.

Adds to every LLM span the roll-up stage enriches (``semconv.is_llm_span``) that can be priced:
``llm.usage.cost.amount`` (double), ``llm.usage.cost.currency`` (ISO 4217) and ``llm.usage.cost.source``
(``provider`` | ``local``), the shape of the open proposal semantic-conventions-genai #443 under our own
prefix (docs/attributes.md says how to rename them). The price, first found wins:

1. Reported: a span that already carries ``gen_ai.usage.cost.amount`` (the proposal's name) or
   ``llm.usage.cost.amount`` keeps that amount (source ``provider`` unless the span says otherwise).
2. The price file (OTEL_LLM_COST_PRICES_FILE, TOML; docs/configuration.md): negotiated rates, models the
   catalogue lacks, another currency. An entry names a provider and a model id or a model-id prefix.
3. The ``genai-prices`` catalogue (pydantic/genai-prices, MIT; the snapshot bundled with the package, no
   network), by the normalised provider (``PROVIDER_IDS`` maps ours to its ids) and requested model.

Tokens, as the conventions count them: cache reads and writes are part of the input tokens, reasoning of the
output tokens; each part is priced at its own rate when the model has one, else at the rate of the whole
(the catalogue's rule). Counts whose parts exceed the whole (an instrumentation reporting input without the
cached tokens) are read as parts beside the whole.

A call that cannot be priced (unknown model, no token counts, catalogue not loadable) gets no cost
attribute; its ``Cost`` says why (``unpriced``) for the counter of calls without price, a rate-limited
warning names the provider and model, and the currency is still stated (``USD``, the catalogue's).

Cost, on the export thread only: the catalogue is imported at the first LLM span (~0.35 s, once); each
(provider, model) is looked up once (~0.1 ms) and kept as plain float rates, so a call costs a dict read and
a few multiplications (bench/bench_cost.py, docs/performance.md). Non-LLM spans are never looked at.
"""

from __future__ import annotations

import logging
import math
import threading
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from otel_llm import semconv
from otel_llm.processors.normalize import LLMCall
from otel_llm.processors.ratelimit import RateLimitedLogger

_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

DEFAULT_CURRENCY = "USD"  # the catalogue's currency
# Why a call has no price (the llm.cost.unpriced_reason label).
UNKNOWN_MODEL = "unknown_model"
MISSING_TOKENS = "missing_tokens"
CATALOGUE_UNAVAILABLE = "catalogue_unavailable"
# gen_ai.provider.name (canonical, otel_llm.semconv) -> genai-prices provider id. Providers not listed
# (ollama, self-hosted) are priced only from the price file.
PROVIDER_IDS: Mapping[str, str] = {
    "openai": "openai",
    "aws.bedrock": "aws",
    "anthropic": "anthropic",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "cohere": "cohere",
    "mistral_ai": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "x_ai": "x-ai",
    "together_ai": "together",
    "fireworks": "fireworks",
}
# Price-file fields: rate per million tokens <- key; "requests_kcount" is per thousand calls.
RATE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok",
             "requests_kcount")
_REPORTED_COST_KEYS = (
    (semconv.GEN_AI_USAGE_COST_AMOUNT, semconv.GEN_AI_USAGE_COST_CURRENCY, semconv.GEN_AI_USAGE_COST_SOURCE),
    (semconv.COST_AMOUNT, semconv.COST_CURRENCY, semconv.COST_SOURCE),
)
_REPORTED_AMOUNT_KEYS = frozenset(keys[0] for keys in _REPORTED_COST_KEYS)
MAX_CACHED_MODELS = 4096  # (provider, model) pairs remembered; past it the cache starts afresh


class Cost(NamedTuple):
    """The cost of one call: ``amount`` None when it could not be priced, ``unpriced`` then says why."""

    amount: float | None
    currency: str = DEFAULT_CURRENCY
    source: str = semconv.COST_SOURCE_LOCAL
    unpriced: str | None = None

    def attributes(self) -> dict[str, Any]:
        """The per-call span attributes: none for a call without price."""
        if self.amount is None:
            return {}
        return {semconv.COST_AMOUNT: self.amount, semconv.COST_CURRENCY: self.currency,
                semconv.COST_SOURCE: self.source}


class Rates(NamedTuple):
    """One model's prices per million tokens (per thousand calls for ``requests_kcount``); a part without
    its own rate (None) is priced at the rate of its whole."""

    input_mtok: float
    output_mtok: float
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
    output_reasoning_mtok: float | None = None
    requests_kcount: float = 0.0
    currency: str = DEFAULT_CURRENCY

    def amount(self, call: LLMCall) -> float:
        """The call's cost; its input count must be set (output may be None for embeddings)."""
        per_million = self.requests_kcount * 1000 + _whole_and_parts(
            call.input_tokens or 0, self.input_mtok, call.cache_read_input_tokens, self.cache_read_mtok,
            call.cache_write_input_tokens, self.cache_write_mtok)
        per_million += _whole_and_parts(call.output_tokens or 0, self.output_mtok,
                                        call.reasoning_output_tokens, self.output_reasoning_mtok, None, None)
        return per_million / 1e6


def _whole_and_parts(whole: int, rate: float, first: int | None, first_rate: float | None,
                     second: int | None, second_rate: float | None) -> float:
    """Cost (per million) of ``whole`` tokens of which up to two parts have rates of their own."""
    total = 0.0
    rest = whole
    if first and first_rate is not None:
        total += first * first_rate
        rest -= first
    if second and second_rate is not None:
        total += second * second_rate
        rest -= second
    if rest < 0:  # the parts were reported beside the whole, not inside it
        rest = whole
    return total + rest * rate


class CostTotals:
    """The cost of the calls beneath one ancestor: ``llm.rollup.cost.*`` (never the per-call names)."""

    __slots__ = ("amounts", "unpriced")

    def __init__(self) -> None:
        self.amounts: dict[str, float] = {}  # currency -> sum of the priced calls
        self.unpriced = 0

    def add(self, cost: Cost) -> None:
        if cost.amount is None:
            self.unpriced += 1
        else:
            self.amounts[cost.currency] = self.amounts.get(cost.currency, 0.0) + cost.amount

    def attributes(self) -> dict[str, Any]:
        """The amount when the priced calls share a currency (none when they do not: amounts of two
        currencies are not added); the currency (or the currencies, sorted, joined by ","); the calls
        without price."""
        rolled: dict[str, Any] = {semconv.ROLLUP_UNPRICED_CALLS: self.unpriced}
        if len(self.amounts) == 1:
            (currency, amount), = self.amounts.items()
            rolled[semconv.ROLLUP_COST_AMOUNT] = amount
            rolled[semconv.ROLLUP_COST_CURRENCY] = currency
        else:
            rolled[semconv.ROLLUP_COST_CURRENCY] = ",".join(sorted(self.amounts)) or DEFAULT_CURRENCY
        return rolled


class PriceEntry(NamedTuple):
    """One price-file entry: a provider, a model id (or, with ``prefix``, a model-id prefix) and its rates."""

    provider: str
    model: str
    rates: Rates
    prefix: bool = False


def load_price_file(path: str) -> tuple[PriceEntry, ...]:
    """The entries of a TOML price file; raises ``ValueError`` naming the entry and the rule it breaks.

    Format (docs/configuration.md): one ``[[price]]`` table per model with ``provider`` (a
    gen_ai.provider.name value), ``model`` or ``model_prefix``, ``input_mtok`` and ``output_mtok``
    (required), optional ``cache_read_mtok``, ``cache_write_mtok``, ``output_reasoning_mtok``,
    ``requests_kcount`` and ``currency`` (ISO 4217, default USD).
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    tables = document.get("price", [])
    if not isinstance(tables, list):
        raise ValueError("'price' must be an array of tables ([[price]])")
    return tuple(_entry(index, table) for index, table in enumerate(tables, 1))


def _entry(index: int, table: Any) -> PriceEntry:
    where = f"[[price]] entry {index}"
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    unknown = sorted(set(table) - {"provider", "model", "model_prefix", "currency", *RATE_KEYS})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    provider = semconv.normalize_provider(table.get("provider"))
    if provider is None:
        raise ValueError(f"{where}: 'provider' (a gen_ai.provider.name value) is required")
    if ("model" in table) == ("model_prefix" in table):
        raise ValueError(f"{where}: give exactly one of 'model' and 'model_prefix'")
    model = semconv.normalize_model(table.get("model", table.get("model_prefix")))
    if model is None:
        raise ValueError(f"{where}: the model must be non-empty text")
    currency = table.get("currency", DEFAULT_CURRENCY)
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise ValueError(f"{where}: 'currency' must be a three-letter ISO 4217 code")
    rates: dict[str, Any] = {"currency": currency.upper()}
    for key in RATE_KEYS:
        value = table.get(key)
        if value is None:
            if key in ("input_mtok", "output_mtok"):
                raise ValueError(f"{where}: '{key}' is required")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0:
            raise ValueError(f"{where}: '{key}' must be a number >= 0")
        rates[key] = float(value)
    return PriceEntry(provider, model, Rates(**rates), prefix="model_prefix" in table)


PRICES_FILE_VARIABLE = "OTEL_LLM_COST_PRICES_FILE"


def pricer_from_file(path: str | None) -> Pricer:
    """A ``Pricer`` with the price file at ``path`` before the catalogue; a file that cannot be used gives
    one warning naming the variable and what it accepts, and the catalogue alone."""
    entries: tuple[PriceEntry, ...] = ()
    if path:
        try:
            entries = load_price_file(path)
        except ValueError as error:
            _logger.warning("otel-llm: %s=%r cannot be used (%s); it accepts a TOML file of [[price]] tables "
                            "(docs/configuration.md). Using the genai-prices catalogue alone.",
                            PRICES_FILE_VARIABLE, path, error)
    return Pricer(entries)


class Pricer:
    """Prices LLM calls: ``cost(call, attributes)``; ``price(call, attributes)`` is the call with its cost.

    ``entries``: price-file entries, before the catalogue. ``catalogue``: False to use the entries only.
    Thread-safe; never raises from ``cost``.
    """

    def __init__(self, entries: Sequence[PriceEntry] = (), *, catalogue: bool = True) -> None:
        self._exact = {(e.provider, e.model): e.rates for e in entries if not e.prefix}
        # Longest prefix first, so the most specific entry wins.
        self._prefixes = sorted(((e.provider, e.model, e.rates) for e in entries if e.prefix),
                                key=lambda entry: -len(entry[1]))
        self._use_catalogue = catalogue
        self._snapshot: Any = None
        self._catalogue_error: str | None = None
        self._lock = threading.Lock()  # guards loading the catalogue
        self._cache: dict[tuple[str, str], Rates | str] = {}  # (provider, model) -> rates or unpriced reason

    def price(self, call: LLMCall, attributes: Mapping[str, Any]) -> LLMCall:
        """``call`` with its ``cost`` set (``cost`` is LLMCall's last field: built directly, not by
        ``_replace``, which takes a microsecond)."""
        return LLMCall(*call[:-1], self.cost(call, attributes))

    def cost(self, call: LLMCall, attributes: Mapping[str, Any]) -> Cost:
        """The cost of one call: reported on the span, else from the price file or the catalogue."""
        try:
            reported = _reported_cost(attributes)
            if reported is not None:
                return reported
            key = (call.provider, call.model)
            rates = self._cache.get(key)
            if rates is None:
                rates = self._rates(*key)
                if len(self._cache) >= MAX_CACHED_MODELS:
                    self._cache.clear()
                self._cache[key] = rates
            if isinstance(rates, str):
                return Cost(None, unpriced=rates)
            if call.input_tokens is None or (call.output_tokens is None and call.operation != "embeddings"):
                if call.error_type is None:  # a failed call without usage is expected; only counted
                    _rate_limited.warning(f"otel-llm: no token counts on a call of {call.provider} "
                                          f"{call.model}; it has no cost attribute")
                return Cost(None, rates.currency, unpriced=MISSING_TOKENS)
            return Cost(rates.amount(call), rates.currency)
        except Exception:
            _rate_limited.exception("otel-llm: pricing a call failed")
            return Cost(None, unpriced=CATALOGUE_UNAVAILABLE)

    def _rates(self, provider: str, model: str) -> Rates | str:
        """The rates of a model (price file, then catalogue), or why there are none; warns once per model."""
        rates = self._exact.get((provider, model))
        if rates is not None:
            return rates
        for entry_provider, prefix, prefix_rates in self._prefixes:
            if entry_provider == provider and model.startswith(prefix):
                return prefix_rates
        found = self._catalogue_rates(provider, model) if self._use_catalogue else UNKNOWN_MODEL
        if found == UNKNOWN_MODEL:
            _logger.warning("otel-llm: no price for model %r of provider %r in the price catalogue or "
                            "%s; its calls have no cost attribute", model, provider,
                            PRICES_FILE_VARIABLE)
        return found

    def _catalogue_rates(self, provider: str, model: str) -> Rates | str:
        snapshot = self._load_catalogue()
        if snapshot is None:
            return CATALOGUE_UNAVAILABLE
        provider_id = PROVIDER_IDS.get(provider)
        if provider_id is None:
            return UNKNOWN_MODEL
        try:
            _, info = snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            return UNKNOWN_MODEL
        return _rates_of(info.get_prices(datetime.now(tz=UTC)))

    def _load_catalogue(self) -> Any:
        """The catalogue's data snapshot, imported once; None (warned once) when it cannot be loaded."""
        if self._snapshot is not None or self._catalogue_error is not None:
            return self._snapshot
        with self._lock:
            if self._snapshot is None and self._catalogue_error is None:
                try:
                    from genai_prices import data_snapshot

                    self._snapshot = data_snapshot.get_snapshot()
                except Exception as error:
                    self._catalogue_error = f"{type(error).__name__}: {error}"
                    _logger.warning("otel-llm: the genai-prices catalogue cannot be loaded (%s); LLM calls "
                                    "are priced from %s only", self._catalogue_error, PRICES_FILE_VARIABLE)
        return self._snapshot


def _rates_of(model_price: Any) -> Rates | str:
    """Plain float rates from a catalogue ``ModelPrice``; UNKNOWN_MODEL when a rate is not a flat price (tiers
    by prompt length: not supported, rather than a wrong number)."""
    values: dict[str, float] = {}
    for key in RATE_KEYS:
        value = getattr(model_price, key, None)
        if value is None:
            continue
        try:
            values[key] = float(value)
        except TypeError:
            return UNKNOWN_MODEL
    if "input_mtok" not in values:
        return UNKNOWN_MODEL
    values.setdefault("output_mtok", 0.0)  # embedding models have no output price
    return Rates(**values)


def _reported_cost(attributes: Mapping[str, Any]) -> Cost | None:
    if _REPORTED_AMOUNT_KEYS.isdisjoint(attributes):  # one pass over the keys; a miss by get() raises inside
        return None
    for amount_key, currency_key, source_key in _REPORTED_COST_KEYS:
        amount = attributes.get(amount_key)
        if isinstance(amount, (int, float)) and not isinstance(amount, bool) and math.isfinite(amount) \
                and amount >= 0:
            currency = attributes.get(currency_key)
            source = attributes.get(source_key)
            if not (isinstance(currency, str) and currency):
                currency = DEFAULT_CURRENCY
            if source not in (semconv.COST_SOURCE_PROVIDER, semconv.COST_SOURCE_LOCAL):
                source = semconv.COST_SOURCE_PROVIDER
            return Cost(float(amount), currency, source)
    return None
