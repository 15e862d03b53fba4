"""Creates the benchmark's virtualenvs, pinned alike, in a cache directory outside the clone.

    python bench/peers/setup.py [--cache DIR] [venv ...]

Every venv gets the same LangGraph, LangChain core and OpenTelemetry SDK (``COMMON``), plus either otel-llm
from this checkout (editable, so the benchmark measures the working tree; one venv per checkout) or one peer:
langsmith[otel] (OTel mode), OpenInference's and OpenLLMetry's LangChain instrumentations. A venv whose
install succeeded is reused (a stamp file records its pins and, for otel-llm, pyproject.toml). Prints, per
venv, its python or why it could not be installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-llm" / "bench-peers"
REPO = Path(__file__).resolve().parents[2]
COMMON = (
    "langgraph==1.2.22",
    "langchain-core==1.7.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-api==1.45.2",
)
OTEL_LLM = "otel_llm"
PEER_PACKAGES = {
    "langsmith": ("langsmith[otel]==0.15.0",),
    "openinference": ("openinference-instrumentation-langchain==0.1.80",),
    "openllmetry": ("opentelemetry-instrumentation-langchain==0.62.4",),
}
VENVS = (OTEL_LLM, *PEER_PACKAGES)


def _packages(name: str) -> tuple[str, ...]:
    return ("-e", str(REPO)) if name == OTEL_LLM else PEER_PACKAGES[name]


def venv_root(cache: Path, name: str) -> Path:
    """The venv's directory; otel-llm's is per checkout (its editable install points at one)."""
    if name == OTEL_LLM:
        return cache / f"{name}-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
    return cache / name


def ensure(cache: Path, name: str) -> tuple[Path | None, str]:
    """(the venv's python, "") when ready, else (None, the reason)."""
    pins = (*COMMON, *_packages(name))
    stamped = "\n".join(pins)
    if name == OTEL_LLM:
        stamped += "\n" + (REPO / "pyproject.toml").read_text()
    stamp_value = hashlib.sha1(stamped.encode()).hexdigest()
    root = venv_root(cache, name)
    stamp = root / ".installed"
    python = root / "bin" / "python"
    if stamp.exists() and stamp.read_text() == stamp_value and python.exists():
        return python, ""
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None, (result.stderr.strip().splitlines() or ["pip failed"])[-1]
    stamp.write_text(stamp_value)
    return python, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("venvs", nargs="*", help=f"any of {', '.join(VENVS)} (default: all)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    unknown = set(args.venvs) - set(VENVS)
    if unknown:
        parser.error(f"unknown venvs {sorted(unknown)}; choose from {', '.join(VENVS)}")
    failed = 0
    for name in args.venvs or VENVS:
        python, reason = ensure(args.cache, name)
        print(f"{name}: {python}" if python else f"{name}: NOT INSTALLED: {reason}", flush=True)
        failed += python is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
