"""The data files of the collector's ``llm_rollup`` processor, generated from ``otel_llm.semconv``.

The Go processor (collector/llmrollupprocessor) embeds ``rules.json``: the attribute names it reads and
writes, every table semconv's resolvers read (``TABLES``: the provider alias table, the model-id and
server-address rules, the model / provider / token key precedence lists, LangSmith's and OpenInference's LLM
span kinds), the roll-up's token attribute names and the caps, so a rule added to ``semconv.py`` reaches the
collector by re-running the generator, not by editing Go. The precedence
itself (``semconv.resolve_provider``'s steps) is code on both sides; a shared corpus proves the two agree:
``testdata/normalize_corpus.json`` holds span attribute sets with the answers Python gives
(``expected``); tests/unit/test_semconv_export.py checks Python against it and the Go tests check Go.

``python -m otel_llm.semconv_export --write`` rewrites rules.json and the corpus's expected answers (the cases
themselves are edited by hand in the corpus); ``--check`` exits 1 when either is stale. Nothing here runs in
an instrumented app.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_llm import experiment, generated, semconv
from otel_llm.processors import cost, normalize, rollup
from otel_llm.stack import paths

PROCESSOR_DIR = paths.COLLECTOR_DIR / "llmrollupprocessor"
RULES_FILE = PROCESSOR_DIR / "rules.json"
CORPUS_FILE = PROCESSOR_DIR / "testdata" / "normalize_corpus.json"
GENERATED_BY = "python -m otel_llm.semconv_export --write (from otel_llm/semconv.py); do not edit"


# The tables semconv's resolvers (is_llm_span, resolve_model, resolve_provider, resolve_token_counts) read, by
# their name in semconv -> their key in rules.json. A compiled table is exported as its source. A table a
# resolver reads that is missing here fails tests/unit/test_semconv_export.py.
TABLES: Mapping[str, str] = {
    "MODEL_KEYS": "model_keys",  # first key holding text wins
    "SYSTEM_KEYS": "system_keys",  # provider keys after gen_ai.provider.name and ls_provider, in order
    "TOKEN_KEYS": "token_keys",  # token kind -> keys, first valid count wins
    "PROVIDER_ALIASES": "provider_aliases",
    "_ALIAS_TO_PROVIDER": "provider_aliases",
    # Python `re` syntax, matched case-insensitively, searched, first match wins.
    "MODEL_RULES": "model_rules",
    "_COMPILED_MODEL_RULES": "model_rules",
    "HOST_RULES": "host_rules",
    "_COMPILED_HOST_RULES": "host_rules",
    "_NON_NAME_CHARS": "provider_name_chars",
    "LLM_OPERATIONS": "llm_operations",
    "LANGSMITH_LLM_KINDS": "langsmith_llm_kinds",
    "OPENINFERENCE_LLM_KINDS": "openinference_llm_kinds",
    "FRAMEWORK_SYSTEMS": "framework_systems",
    "MAX_PROVIDER_LENGTH": "max_provider_length",
    "MAX_MODEL_LENGTH": "max_model_length",
}


def _as_json(table: Any) -> Any:
    """A semconv table as JSON data: sets sorted, rule pairs as {pattern, provider}, compiled patterns as
    their source, an alias table as alias -> canonical."""
    if isinstance(table, re.Pattern):
        return table.pattern
    if table is semconv.PROVIDER_ALIASES or table is semconv._ALIAS_TO_PROVIDER:
        return dict(semconv._ALIAS_TO_PROVIDER)
    if isinstance(table, frozenset):
        return sorted(table)
    if isinstance(table, Mapping):
        return {key: _as_json(value) for key, value in table.items()}
    if isinstance(table, tuple) and table and isinstance(table[0], tuple):
        return [{"pattern": _as_json(pattern), "provider": provider} for pattern, provider in table]
    if isinstance(table, tuple):
        return list(table)
    return table


def rules() -> dict[str, Any]:
    """Everything the Go processor takes from the Python package, as plain JSON data."""
    return {
        "generated_by": GENERATED_BY,
        "names": {
            "provider_name": semconv.GEN_AI_PROVIDER_NAME,
            "request_model": semconv.GEN_AI_REQUEST_MODEL,
            "operation_name": semconv.GEN_AI_OPERATION_NAME,
            "system": semconv.GEN_AI_SYSTEM,
            "langsmith_span_kind": semconv.LANGSMITH_SPAN_KIND,
            "openinference_span_kind": semconv.OPENINFERENCE_SPAN_KIND,
            "server_address": semconv.SERVER_ADDRESS,
            "langsmith_ls_provider": semconv.LANGSMITH_LS_PROVIDER,
            "langsmith_langgraph_node": semconv.LANGSMITH_LANGGRAPH_NODE,
            "openllmetry_request_type": semconv.OPENLLMETRY_REQUEST_TYPE,
            "error_type": semconv.ERROR_TYPE,
            "langgraph_node": semconv.LANGGRAPH_NODE,
            "experiment_id": semconv.EXPERIMENT_ID,
            "experiment_arm": semconv.EXPERIMENT_ARM,
            "experiment_provider": semconv.EXPERIMENT_PROVIDER,
            "experiment_model": semconv.EXPERIMENT_MODEL,
            "experiment_fallback": semconv.EXPERIMENT_FALLBACK,
            "rollup_provider": semconv.ROLLUP_PROVIDER,
            "rollup_model": semconv.ROLLUP_MODEL,
            "rollup_providers": semconv.ROLLUP_PROVIDERS,
            "rollup_models": semconv.ROLLUP_MODELS,
            "rollup_calls": semconv.ROLLUP_CALLS,
            "rollup_error_calls": semconv.ROLLUP_ERROR_CALLS,
            "rollup_error": semconv.ROLLUP_ERROR,
            "rollup_cost_amount": semconv.ROLLUP_COST_AMOUNT,
            "rollup_cost_currency": semconv.ROLLUP_COST_CURRENCY,
            "rollup_unpriced_calls": semconv.ROLLUP_UNPRICED_CALLS,
            "trace_duration_ms": semconv.TRACE_DURATION_MS,
            "trace_llm_duration_ms": semconv.TRACE_LLM_DURATION_MS,
            "trace_llm_share": semconv.TRACE_LLM_SHARE,
            "trace_services": semconv.TRACE_SERVICES,
            "trace_span_count": semconv.TRACE_SPAN_COUNT,
            "request_span": semconv.REQUEST_SPAN_NAME,
            "service_name": "service.name",
        },
        **{key: _as_json(getattr(semconv, name)) for name, key in TABLES.items()},
        # Token kind -> the llm.rollup.* attribute its sum is written to (rollup._ROLLUP_TOKEN_FIELDS).
        "rollup_token_attributes": {
            normalize.TOKEN_KIND_OF_FIELD[field]: attribute
            for attribute, field in rollup._ROLLUP_TOKEN_FIELDS
        },
        # Per-call cost (amount, currency) an LLM span carries: ours (the SDK's pricer), then the proposal's.
        "cost_sources": [
            [semconv.COST_AMOUNT, semconv.COST_CURRENCY],
            [semconv.GEN_AI_USAGE_COST_AMOUNT, semconv.GEN_AI_USAGE_COST_CURRENCY],
        ],
        "default_currency": cost.DEFAULT_CURRENCY,
        "bedrock_provider": "aws.bedrock",
        "unknown": semconv.UNKNOWN,
        "max_node_length": normalize._MAX_NODE_LENGTH,
        "max_rollup_values": rollup.MAX_ROLLUP_VALUES,
        "rollup_overflow_value": semconv.OTHER,
        "other_error_type": semconv.OTHER,
        "default_experiment_id": experiment.DEFAULT_EXPERIMENT_ID,
    }


def _as_sdk_value(value: Any) -> Any:
    """A JSON value as the SDK would hold it: sequences are tuples."""
    return tuple(value) if isinstance(value, list) else value


def answers(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What Python concludes from one span's attributes: the corpus's ``expected``."""
    held = {key: _as_sdk_value(value) for key, value in attributes.items()}
    model = semconv.resolve_model(held)
    return {
        "llm": semconv.is_llm_span(held),
        "provider": semconv.resolve_provider(held, model),
        "model": model,
        "tokens": semconv.resolve_token_counts(held),
        "node": normalize.langgraph_node(held),
    }


def corpus(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corpus cases with ``expected`` recomputed by Python."""
    return [{**case, "expected": answers(case["attributes"])} for case in cases]


def _dump(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def rendered() -> dict[Path, str]:
    """The generated files and their current contents."""
    cases = json.loads(CORPUS_FILE.read_text())["cases"]
    return {
        RULES_FILE: _dump(rules()),
        CORPUS_FILE: _dump({"generated_by": GENERATED_BY, "cases": corpus(cases)}),
    }


def main(argv: list[str] | None = None) -> int:
    return generated.main(argv, "otel_llm.semconv_export", __doc__.splitlines()[0], rendered)


if __name__ == "__main__":
    sys.exit(main())
