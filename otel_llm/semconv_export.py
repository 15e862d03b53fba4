"""The data files of the collector's ``llm_rollup`` processor, generated from ``otel_llm.semconv``.

The Go processor (collector/llmrollupprocessor) embeds ``rules.json``: the attribute names it reads and
writes, the provider alias table, the model-id rules, the LLM-span recognition values and the caps, so a rule
added to ``semconv.py`` reaches the collector by re-running the generator, not by editing Go. The precedence
itself (``semconv.resolve_provider``'s steps) is code on both sides; a shared corpus proves the two agree:
``testdata/normalize_corpus.json`` holds span attribute sets with the answers Python gives
(``expected``); tests/unit/test_semconv_export.py checks Python against it and the Go tests check Go.

``python -m otel_llm.semconv_export --write`` rewrites rules.json and the corpus's expected answers (the cases
themselves are edited by hand in the corpus); ``--check`` exits 1 when either is stale. Nothing here runs in
an instrumented app.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_llm import experiment, semconv
from otel_llm.processors import normalize, rollup
from otel_llm.stack import paths

PROCESSOR_DIR = paths.COLLECTOR_DIR / "llmrollupprocessor"
RULES_FILE = PROCESSOR_DIR / "rules.json"
CORPUS_FILE = PROCESSOR_DIR / "testdata" / "normalize_corpus.json"
STALE_HINT = "python -m otel_llm.semconv_export --write"
GENERATED_BY = "python -m otel_llm.semconv_export --write (from otel_llm/semconv.py); do not edit"


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
            "rollup_input_tokens": semconv.ROLLUP_INPUT_TOKENS,
            "rollup_output_tokens": semconv.ROLLUP_OUTPUT_TOKENS,
            "rollup_error_calls": semconv.ROLLUP_ERROR_CALLS,
            "rollup_error": semconv.ROLLUP_ERROR,
            "trace_duration_ms": semconv.TRACE_DURATION_MS,
            "trace_llm_duration_ms": semconv.TRACE_LLM_DURATION_MS,
            "trace_llm_share": semconv.TRACE_LLM_SHARE,
            "trace_services": semconv.TRACE_SERVICES,
            "trace_span_count": semconv.TRACE_SPAN_COUNT,
            "request_span": semconv.REQUEST_SPAN_NAME,
            "service_name": "service.name",
        },
        # Tried in order; the first that gives a value wins (semconv.resolve_model, semconv.resolve_tokens).
        "model_sources": [
            semconv.GEN_AI_REQUEST_MODEL, semconv.LANGSMITH_LS_MODEL_NAME, semconv.GEN_AI_RESPONSE_MODEL,
        ],
        "input_token_sources": [semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_PROMPT_TOKENS],
        "output_token_sources": [semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_COMPLETION_TOKENS],
        "provider_aliases": {
            alias: canonical
            for canonical, aliases in semconv.PROVIDER_ALIASES.items()
            for alias in aliases
        },
        # Python `re` syntax, matched case-insensitively, first match wins (semconv.provider_from_model).
        "model_rules": [
            {"pattern": pattern, "provider": provider} for pattern, provider in semconv.MODEL_RULES
        ],
        "bedrock_provider": "aws.bedrock",
        "provider_name_chars": semconv._NON_NAME_CHARS.pattern,
        "llm_operations": sorted(semconv.LLM_OPERATIONS),
        "langsmith_llm_kinds": sorted(semconv.LANGSMITH_LLM_KINDS),
        "framework_systems": sorted(semconv.FRAMEWORK_SYSTEMS),
        "unknown": semconv.UNKNOWN,
        "max_provider_length": semconv.MAX_PROVIDER_LENGTH,
        "max_model_length": semconv.MAX_MODEL_LENGTH,
        "max_node_length": normalize._MAX_NODE_LENGTH,
        "max_rollup_values": rollup.MAX_ROLLUP_VALUES,
        "rollup_overflow_value": rollup.OVERFLOW_VALUE,
        "other_error_type": normalize.OTHER_ERROR_TYPE,
        "default_experiment_id": experiment.DEFAULT_EXPERIMENT_ID,
    }


def _as_sdk_value(value: Any) -> Any:
    """A JSON value as the SDK would hold it: sequences are tuples."""
    return tuple(value) if isinstance(value, list) else value


def answers(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What Python concludes from one span's attributes: the corpus's ``expected``."""
    held = {key: _as_sdk_value(value) for key, value in attributes.items()}
    model = semconv.resolve_model(held)
    input_tokens, output_tokens = semconv.resolve_tokens(held)
    return {
        "llm": semconv.is_llm_span(held),
        "provider": semconv.resolve_provider(held, model),
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
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
    parser = argparse.ArgumentParser(
        prog="python -m otel_llm.semconv_export", description=__doc__.splitlines()[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite rules.json and the corpus's answers")
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, text in rendered().items():
        current = path.exists() and path.read_text() == text
        if args.write and not current:
            path.write_text(text)
        elif args.check or not args.write:
            print(f"{path}: {'current' if current else f'STALE: run {STALE_HINT}'}")
            stale += not current
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
