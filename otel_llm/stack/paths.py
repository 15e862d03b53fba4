"""Where the stack's files live: configs in the repository, the build cache outside it, pinned versions.

Everything that starts, builds or validates the stack takes its paths from here, so a file moves in one place.
The configs are read from the repository (``make install`` installs this package editable); built binaries go
to ``$OTEL_LLM_CACHE_DIR`` (default ``~/.cache/otel-llm``), keyed by version and a hash of their sources.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

COLLECTOR_DIR = REPO_ROOT / "collector"
COLLECTOR_MANIFEST = COLLECTOR_DIR / "builder-config.yaml"
COLLECTOR_CONFIG = COLLECTOR_DIR / "config.yaml"
COLLECTOR_TESTDATA = COLLECTOR_DIR / "testdata"

JAEGER_DIR = REPO_ROOT / "jaeger"
JAEGER_CONFIG = JAEGER_DIR / "config.yaml"
JAEGER_CONFIG_MEMORY = JAEGER_DIR / "config-memory.yaml"
JAEGER_TESTDATA = JAEGER_DIR / "testdata"
JAEGER_BUILD_MODULE = JAEGER_DIR / "module"  # go.mod + go.sum of the wrapper module `go install tool` builds

PROMETHEUS_DIR = REPO_ROOT / "prometheus"
PROMETHEUS_TEMPLATE = PROMETHEUS_DIR / "prometheus.yml.tmpl"
PROMETHEUS_RULES_DIR = PROMETHEUS_DIR / "rules"
PROMETHEUS_RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"

# Pinned versions. The collector's components are v0.159.0 (core stable modules v1.65.0, see the manifest).
# Jaeger v2.20.0 is refused by the Go proxy here, so the wrapper module pins github.com/jaegertracing/jaeger
# v1.75.0 (v1.76.0 is served but not an approved release here), the module version that ships the v2
# `cmd/jaeger` binary (docs/stack.md). tests/unit/test_stack_build.py checks it against jaeger/module/go.mod.
BUILDER_VERSION = "v0.159.0"
BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
COLLECTOR_NAME = "otelcol-llm"
COLLECTOR_VERSION = "0.159.0"
JAEGER_NAME = "jaeger"
JAEGER_VERSION = "1.75.0"

CACHE_DIR_ENV = "OTEL_LLM_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/otel-llm")


def cache_dir() -> Path:
    """The build cache: ``$OTEL_LLM_CACHE_DIR`` when set and non-empty, else ``~/.cache/otel-llm``."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(configured or DEFAULT_CACHE_DIR).expanduser()


def binaries_dir() -> Path:
    """Where built binaries live, one directory per ``<name>-<version>-<hash>``."""
    return cache_dir() / "bin"
