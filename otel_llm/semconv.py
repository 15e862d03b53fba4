"""The attribute vocabulary of otel-llm: one source of truth for names, the provider table and model-id rules.

Everything that reads or writes an LLM attribute (the span processors, the metric views, the demo, the
collector's llm_rollup processor, through the data file ``python -m otel_llm.semconv_export`` writes) takes
its names from here.

Standard names first: the OpenTelemetry GenAI semantic conventions (``gen_ai.*``). Deprecated GenAI names and
LangSmith's and OpenLLMetry's attributes are *read* and translated, never written. Our own ``llm.*`` names
exist only where no convention does: the roll-up onto ancestor spans, the experiment, the LangGraph node.

Nothing here touches a span; these are plain functions of strings, cheap enough for the export thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# --- OpenTelemetry GenAI semantic conventions (written and read) --------------------------------------------
GEN_AI_PREFIX = "gen_ai."
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
OTEL_METRIC_OVERFLOW = "otel.metric.overflow"  # the metrics specification's attribute of an overflow series
ERROR_TYPE = "error.type"
# The SDK self-observability conventions' name of one pipeline component, "<type>/<index>".
OTEL_COMPONENT_NAME = "otel.component.name"
SESSION_ID = "session.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
TOKEN_TYPE_INPUT = "input"  # gen_ai.token.type values
TOKEN_TYPE_OUTPUT = "output"
# The conventions' catch-all value: error.type when nothing names the error; we also use it for the last entry
# of a capped roll-up list and for a provider label past the metrics' cardinality cap.
OTHER = "_OTHER"
# GenAI client metric instruments (semconv names; views and bucket boundaries in otel_llm/metrics/views.py).
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
# Own metric: the parts of the token counts (no convention has them as a metric); llm.token.detail says which.
METRIC_TOKEN_USAGE_DETAIL = "llm.client.token.usage.detail"
TOKEN_DETAIL = "llm.token.detail"  # cache_read | cache_write | reasoning
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # s, on the LLM span
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
# gen_ai.operation.name values written by the LangChain instrumentation.
OPERATION_CHAT = "chat"
OPERATION_TEXT_COMPLETION = "text_completion"
OPERATION_EXECUTE_TOOL = "execute_tool"
OPERATION_RETRIEVAL = "retrieval"
OPERATION_INVOKE_WORKFLOW = "invoke_workflow"

# --- Deprecated GenAI names (read and translated, never written) --------------------------------------------
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"  # renamed cache_write

# --- LangSmith (langsmith[otel]) and OpenLLMetry attributes (read only) -------------------------------------
LANGSMITH_SPAN_KIND = "langsmith.span.kind"
LANGSMITH_LS_PROVIDER = "langsmith.metadata.ls_provider"
LANGSMITH_LS_MODEL_NAME = "langsmith.metadata.ls_model_name"
LANGSMITH_LANGGRAPH_NODE = "langsmith.metadata.langgraph_node"
LANGSMITH_SPAN_TAGS = "langsmith.span.tags"  # run tags joined by ", " (the app's intent:<x> tag among them)
LANGSMITH_INTENT = "langsmith.metadata.intent"  # run metadata "intent" (the Eco2 agent's run config)
# Also WRITTEN by otel_llm.instrumentation.langchain (LangSmith's OTel names, so the collector can ship its
# spans to LangSmith): run name, metadata prefix, and LangSmith's content attributes (only when content
# capture is on).
LANGSMITH_TRACE_NAME = "langsmith.trace.name"
LANGSMITH_METADATA_PREFIX = "langsmith.metadata."
LANGSMITH_PROMPT = "gen_ai.prompt"
LANGSMITH_COMPLETION = "gen_ai.completion"
OPENLLMETRY_REQUEST_TYPE = "llm.request.type"
OPENLLMETRY_REASONING_TOKENS = "gen_ai.usage.reasoning_tokens"

# --- OpenInference (Arize; openinference-semantic-conventions) attributes (read only) -----------------------
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENINFERENCE_PROVIDER = "llm.provider"  # the host's operator ("azure" for Azure OpenAI)
OPENINFERENCE_SYSTEM = "llm.system"  # the API family ("openai" for Azure OpenAI too)
OPENINFERENCE_MODEL_NAME = "llm.model_name"  # the response model
OPENINFERENCE_PROMPT_TOKENS = "llm.token_count.prompt"
OPENINFERENCE_COMPLETION_TOKENS = "llm.token_count.completion"
OPENINFERENCE_CACHE_READ_TOKENS = "llm.token_count.prompt_details.cache_read"
OPENINFERENCE_CACHE_WRITE_TOKENS = "llm.token_count.prompt_details.cache_write"
OPENINFERENCE_REASONING_TOKENS = "llm.token_count.completion_details.reasoning"

# --- otel-llm's own names, only where no convention exists --------------------------------------------------
EXPERIMENT_ID = "llm.experiment.id"
EXPERIMENT_ARM = "llm.experiment.arm"  # "<provider>:<model>" of the arm the request was assigned
EXPERIMENT_PROVIDER = "llm.experiment.provider"  # the assigned arm's provider (a gen_ai.provider.name)
EXPERIMENT_MODEL = "llm.experiment.model"  # the assigned arm's model id
EXPERIMENT_FALLBACK = "llm.experiment.fallback"  # true on a local root whose calls missed its arm's model
LANGGRAPH_NODE = "llm.langgraph.node"
# Roll-up of the LLM calls beneath an ancestor span (local root, LangGraph graph and node spans).
ROLLUP_PROVIDER = "llm.rollup.provider"  # distinct providers, sorted, joined by ","
ROLLUP_MODEL = "llm.rollup.model"  # distinct models, sorted, joined by ","
ROLLUP_PROVIDERS = "llm.rollup.providers"  # distinct providers, sorted (string array)
ROLLUP_MODELS = "llm.rollup.models"  # distinct models, sorted (string array)
ROLLUP_CALLS = "llm.rollup.calls"  # number of LLM calls beneath
ROLLUP_INPUT_TOKENS = "llm.rollup.input_tokens"  # sum over the calls beneath
ROLLUP_OUTPUT_TOKENS = "llm.rollup.output_tokens"
# Details of the token sums above (cache reads and writes are part of the input tokens, reasoning of the
# output tokens): own names, never gen_ai.usage.*, so a backend summing gen_ai.usage.* over a trace counts
# each call once.
ROLLUP_CACHE_READ_INPUT_TOKENS = "llm.rollup.cache_read.input_tokens"
ROLLUP_CACHE_WRITE_INPUT_TOKENS = "llm.rollup.cache_write.input_tokens"
ROLLUP_REASONING_OUTPUT_TOKENS = "llm.rollup.reasoning.output_tokens"
ROLLUP_ERROR_CALLS = "llm.rollup.error_calls"  # calls beneath that ended with an error
ROLLUP_ERROR = "llm.rollup.error"  # true when any call beneath failed
# Cost of one LLM call (on LLM spans only), in the shape of the open proposal semantic-conventions-genai #443
# (gen_ai.usage.cost.*) under our own prefix until a convention lands (docs/attributes.md says how to rename).
COST_AMOUNT = "llm.usage.cost.amount"  # double, in COST_CURRENCY
COST_CURRENCY = "llm.usage.cost.currency"  # ISO 4217 code, "USD" for the catalogue's prices
COST_SOURCE = "llm.usage.cost.source"  # "provider" (reported on the span) | "local" (from a price table)
COST_SOURCE_PROVIDER = "provider"
COST_SOURCE_LOCAL = "local"
# The proposal's names, read as a provider-reported cost when an instrumentation writes them.
GEN_AI_USAGE_COST_AMOUNT = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE = "gen_ai.usage.cost.source"
# Roll-up of the cost of the calls beneath an ancestor (never the per-call names above on a parent).
# The amount sums the priced calls beneath when they share a currency; the currency is that one (or the sorted
# currencies joined by "," when mixed, with no amount); the calls without price make the amount a lower bound.
ROLLUP_COST_AMOUNT = "llm.rollup.cost.amount"
ROLLUP_COST_CURRENCY = "llm.rollup.cost.currency"
ROLLUP_UNPRICED_CALLS = "llm.rollup.cost.unpriced_calls"
# Cost metrics (views in otel_llm/metrics/views.py): the money spent, and the calls no price was found for.
METRIC_COST = "llm.client.cost"
METRIC_UNPRICED_CALLS = "llm.client.cost.unpriced_calls"
COST_UNPRICED_REASON = "llm.cost.unpriced_reason"  # unknown_model | missing_tokens | catalogue_unavailable
# End-to-end facts the collector's llm_rollup processor (collector/llmrollupprocessor) writes on a trace root.
TRACE_DURATION_MS = "llm.trace.duration_ms"  # first span's start to last span's end, all services (ms)
TRACE_LLM_DURATION_MS = "llm.trace.llm_duration_ms"  # time covered by at least one LLM call (ms)
TRACE_LLM_SHARE = "llm.trace.llm_share"  # llm_duration_ms / duration_ms, 0..1
TRACE_SERVICES = "llm.trace.services"  # distinct service.name values, sorted (string array)
TRACE_SPAN_COUNT = "llm.trace.span_count"  # spans of the trace the processor held
REQUEST_SPAN_NAME = "llm.request"  # summary span of a request's end-to-end time

UNKNOWN = "unknown"
MAX_PROVIDER_LENGTH = 64
MAX_MODEL_LENGTH = 128

# Operation names of real model calls (semconv gen_ai.operation.name, and OpenLLMetry's llm.request.type
# values).
LLM_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion", "embedding", "rerank"}
)
# langsmith.span.kind values that are model calls; every other kind (chain, tool, retriever, ...) is not.
LANGSMITH_LLM_KINDS = frozenset({"llm", "embedding"})
# openinference.span.kind values that are model calls (its CHAIN, AGENT, TOOL, ... spans are not).
OPENINFERENCE_LLM_KINDS = frozenset({"LLM", "EMBEDDING"})
# gen_ai.system values that name a framework, not a provider (langsmith marks every chain span "langchain").
FRAMEWORK_SYSTEMS = frozenset({"langchain", "langgraph", "llamaindex", "crewai"})

# Canonical gen_ai.provider.name values (semconv well-known values) and the aliases we have seen for each.
PROVIDER_ALIASES: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai", "open_ai", "openai_chat"),
    "aws.bedrock": (
        "aws.bedrock", "amazon_bedrock", "bedrock", "aws_bedrock", "aws-bedrock", "amazon.bedrock",
        "bedrock_converse", "amazon",
    ),
    "anthropic": ("anthropic",),
    "azure.ai.openai": (
        "azure.ai.openai", "azure_openai", "azure-openai", "azureopenai", "az.ai.openai", "azure",
    ),
    "azure.ai.inference": ("azure.ai.inference", "az.ai.inference", "azure_ai_inference", "azure_ai"),
    "gcp.vertex_ai": ("gcp.vertex_ai", "vertex_ai", "vertexai", "google_vertexai", "vertex", "gcp_vertex_ai"),
    "gcp.gemini": ("gcp.gemini", "gemini", "google_genai", "google_gemini", "google", "google_ai"),
    "gcp.gen_ai": ("gcp.gen_ai",),
    "cohere": ("cohere",),
    "mistral_ai": ("mistral_ai", "mistralai", "mistral"),
    "groq": ("groq",),
    "deepseek": ("deepseek",),
    "perplexity": ("perplexity",),
    "x_ai": ("x_ai", "xai"),
    "ibm.watsonx.ai": ("ibm.watsonx.ai", "watsonx", "ibm_watsonx", "ibm"),
    "ollama": ("ollama",),
    "huggingface": ("huggingface", "hugging_face", "huggingface_hub"),
    "together_ai": ("together_ai", "together"),
    "fireworks": ("fireworks", "fireworks_ai"),
}
_ALIAS_TO_PROVIDER = {
    alias: canonical for canonical, aliases in PROVIDER_ALIASES.items() for alias in aliases
}

# Model-id rules, first match wins. A Bedrock model id is "<vendor>.<model>" (optionally with a cross-region
# inference prefix "us." / "eu." / "apac." / "global."), or an ARN; it is Bedrock whatever vendor it names.
MODEL_RULES: tuple[tuple[str, str], ...] = (
    (r"^arn:aws[\w-]*:bedrock:", "aws.bedrock"),
    (r"^(?:(?:us|us-gov|eu|apac|jp|au|global)\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|stability|"
     r"writer|qwen|openai|twelvelabs|luma)\.[\w.:-]+$", "aws.bedrock"),
    (r"^(?:gpt-|gpt4|chatgpt-|o1(?:$|-)|o3(?:$|-)|o4-|text-embedding-|davinci|babbage|dall-e|whisper|tts-|omni-)",
     "openai"),
    (r"^claude", "anthropic"),
    (r"^gemini", "gcp.gemini"),
    (r"^(?:mistral|mixtral|codestral|ministral|pixtral|magistral|devstral)", "mistral_ai"),
    (r"^(?:command|embed-(?:english|multilingual)|rerank-)", "cohere"),
    (r"^grok", "x_ai"),
    (r"^deepseek", "deepseek"),
)
_COMPILED_MODEL_RULES = tuple(
    (re.compile(pattern, re.IGNORECASE), provider) for pattern, provider in MODEL_RULES
)
# Server-address rules, first match wins, over any provider an instrumentation wrote: where the request went
# decides (openai-v2 writes gen_ai.provider.name=openai for openai.AzureOpenAI). Matched against
# server.address, which some instrumentations fill with a host and others with a URL (OpenLLMetry).
HOST_RULES: tuple[tuple[str, str], ...] = (
    (r"(?:^|[/.])openai\.azure\.com(?:[:/]|$)", "azure.ai.openai"),
    (r"(?:^|[/.])(?:services|inference)\.ai\.azure\.com(?:[:/]|$)", "azure.ai.inference"),
    (r"(?:^|[/.])bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?(?:[:/]|$)", "aws.bedrock"),
)
_COMPILED_HOST_RULES = tuple(
    (re.compile(pattern, re.IGNORECASE), provider) for pattern, provider in HOST_RULES
)

# Where each fact of an LLM span is read, first present key wins: the semantic conventions, then their
# deprecated names, then LangSmith's, OpenLLMetry's and OpenInference's.
MODEL_KEYS: tuple[str, ...] = (
    GEN_AI_REQUEST_MODEL, LANGSMITH_LS_MODEL_NAME, GEN_AI_RESPONSE_MODEL, OPENINFERENCE_MODEL_NAME,
)
# Provider keys after gen_ai.provider.name and LangSmith's ls_provider (see resolve_provider).
SYSTEM_KEYS: tuple[str, ...] = (GEN_AI_SYSTEM, OPENINFERENCE_PROVIDER, OPENINFERENCE_SYSTEM)
# Token kind -> keys. Cache reads and writes are part of the input tokens, reasoning of the output tokens.
TOKEN_KEYS: Mapping[str, tuple[str, ...]] = {
    "input": (GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_PROMPT_TOKENS, OPENINFERENCE_PROMPT_TOKENS),
    "output": (GEN_AI_USAGE_OUTPUT_TOKENS, GEN_AI_USAGE_COMPLETION_TOKENS, OPENINFERENCE_COMPLETION_TOKENS),
    "cache_read": (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, OPENINFERENCE_CACHE_READ_TOKENS),
    "cache_write": (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                    OPENINFERENCE_CACHE_WRITE_TOKENS),
    "reasoning": (GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, OPENLLMETRY_REASONING_TOKENS,
                  OPENINFERENCE_REASONING_TOKENS),
}
_NON_NAME_CHARS = re.compile(r"[^a-z0-9_.]+")


def _as_text(value: Any) -> str | None:
    """The value as a stripped string, or None when missing or empty. Sequences give their first item."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return _as_text(value[0]) if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def normalize_provider(value: Any) -> str | None:
    """The canonical ``gen_ai.provider.name`` for a provider value; unknown values pass through normalised.

    Normalised means lower case, runs of anything but ``[a-z0-9_.]`` turned into ``_``, capped at
    ``MAX_PROVIDER_LENGTH``. None, empty and non-text values that print empty give None.
    """
    text = _as_text(value)
    if text is None:
        return None
    key = text.lower()
    canonical = _ALIAS_TO_PROVIDER.get(key)
    if canonical is not None:
        return canonical
    cleaned = _NON_NAME_CHARS.sub("_", key).strip("_")
    canonical = _ALIAS_TO_PROVIDER.get(cleaned)
    if canonical is not None:
        return canonical
    return cleaned[:MAX_PROVIDER_LENGTH] or None


def normalize_model(value: Any) -> str | None:
    """A model id stripped and capped at ``MAX_MODEL_LENGTH``; case is kept (model ids are case-sensitive)."""
    text = _as_text(value)
    return text[:MAX_MODEL_LENGTH] if text is not None else None


def _first_rule(rules: tuple[tuple[re.Pattern[str], str], ...], value: Any) -> str | None:
    """The provider of the first compiled rule whose pattern is found in ``value``'s text, or None."""
    text = _as_text(value)
    if text is None:
        return None
    return next((provider for pattern, provider in rules if pattern.search(text)), None)


def provider_from_model(model: Any) -> str | None:
    """The provider a model id implies (``anthropic.claude-3-haiku-20240307-v1:0`` is Bedrock), or None."""
    return _first_rule(_COMPILED_MODEL_RULES, model)


def is_bedrock_model_id(model: Any) -> bool:
    """True for ids only Bedrock uses (``vendor.model`` or an ARN): they beat a name-based guess."""
    return provider_from_model(model) == "aws.bedrock"


def provider_from_host(address: Any) -> str | None:
    """The provider a ``server.address`` (host or URL) implies by ``HOST_RULES``, or None."""
    return _first_rule(_COMPILED_HOST_RULES, address)


def is_llm_span(attributes: Mapping[str, Any]) -> bool:
    """True when the attributes describe a real model call, whichever instrumentation made the span.

    LangSmith's or OpenInference's span kind decides when present (LangSmith marks chains
    ``gen_ai.operation.name=chain``); then the semconv operation name; then OpenLLMetry's request type; last,
    a provider-like system together with a model.
    """
    kind = attributes.get(LANGSMITH_SPAN_KIND)
    if kind is not None:
        return kind in LANGSMITH_LLM_KINDS
    kind = attributes.get(OPENINFERENCE_SPAN_KIND)
    if kind is not None:
        return kind in OPENINFERENCE_LLM_KINDS
    operation = attributes.get(GEN_AI_OPERATION_NAME)
    if operation is not None:
        return operation in LLM_OPERATIONS
    request_type = attributes.get(OPENLLMETRY_REQUEST_TYPE)
    if request_type is not None:
        return request_type in LLM_OPERATIONS
    system = attributes.get(GEN_AI_PROVIDER_NAME) or attributes.get(GEN_AI_SYSTEM)
    return (
        system is not None
        and str(system).lower() not in FRAMEWORK_SYSTEMS
        and attributes.get(GEN_AI_REQUEST_MODEL) is not None
    )


def resolve_model(attributes: Mapping[str, Any]) -> str | None:
    """The requested model: the first of ``MODEL_KEYS`` that holds text (a number is printed; a value that
    prints empty is skipped)."""
    for key in MODEL_KEYS:
        model = normalize_model(attributes.get(key))
        if model is not None:
            return model
    return None


def resolve_provider(attributes: Mapping[str, Any], model: str | None = None) -> str | None:
    """The provider of an LLM span, by precedence.

    1. The ``server.address`` by ``HOST_RULES`` (Azure OpenAI behind an instrumentation that says openai).
    2. ``gen_ai.provider.name`` as set (normalised).
    3. LangSmith's ``ls_provider``: the chat model's own word, e.g. ``amazon_bedrock``.
    4. A Bedrock-only model id: langsmith's ``gen_ai.system`` is a guess from the model name and calls
       Bedrock's Claude ``anthropic``, so the id's shape wins over it.
    5. ``SYSTEM_KEYS``: the deprecated ``gen_ai.system``, OpenInference's ``llm.provider`` then
       ``llm.system``, unless it names a framework (``langchain``).
    6. The provider the model id implies.
    """
    for provider in (provider_from_host(attributes.get(SERVER_ADDRESS)),
                     normalize_provider(attributes.get(GEN_AI_PROVIDER_NAME)),
                     normalize_provider(attributes.get(LANGSMITH_LS_PROVIDER))):
        if provider is not None:
            return provider
    if model is None:
        model = resolve_model(attributes)
    inferred = provider_from_model(model)
    if inferred == "aws.bedrock":
        return inferred
    for key in SYSTEM_KEYS:
        system = normalize_provider(attributes.get(key))
        if system is not None and system not in FRAMEWORK_SYSTEMS:
            return system
    return inferred


def metric_provider(attributes: Mapping[str, Any]) -> str | None:
    """The ``gen_ai.provider.name`` a GenAI metric point should carry, or None to leave it as recorded.

    For instrumentations' own metrics: the ``server.address`` by ``HOST_RULES`` beats the recorded provider;
    a point with only the deprecated ``gen_ai.system`` gets it translated.
    """
    provider = provider_from_host(attributes.get(SERVER_ADDRESS))
    if provider is None and attributes.get(GEN_AI_PROVIDER_NAME) is None:
        provider = normalize_provider(attributes.get(GEN_AI_SYSTEM))
    return provider if provider != attributes.get(GEN_AI_PROVIDER_NAME) else None


def _as_int(value: Any) -> int | None:
    """A token count: an int, a float (truncated) or text holding an int; None for negatives, bools and the
    rest."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number >= 0 else None


def resolve_token_counts(attributes: Mapping[str, Any]) -> dict[str, int]:
    """Token kind (``TOKEN_KEYS``: input, output, cache_read, cache_write, reasoning) -> the count of the
    first key that holds a valid count. Kinds with none are absent."""
    counts: dict[str, int] = {}
    for kind, keys in TOKEN_KEYS.items():
        for key in keys:
            count = _as_int(attributes.get(key))
            if count is not None:
                counts[kind] = count
                break
    return counts


def resolve_tokens(attributes: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Input and output token counts (``resolve_token_counts``)."""
    counts = resolve_token_counts(attributes)
    return counts.get("input"), counts.get("output")
