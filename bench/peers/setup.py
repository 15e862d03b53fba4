"""Creates one virtualenv per peer instrumentation, pinned, in a cache directory outside the clone.

    python bench/peers/setup.py [--cache DIR] [peer ...]

Each venv gets the same LangGraph, LangChain core and OpenTelemetry SDK as otel-llm's own, plus the peer:
langsmith[otel] (OTel mode), OpenInference's and OpenLLMetry's LangChain instrumentations. A venv whose
install succeeded is reused (a stamp file records its pins). Prints, per peer, the venv's python or why it
could not be installed.
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
COMMON = (
    "langgraph==1.2.22",
    "langchain-core==1.7.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-api==1.45.2",
)
PEER_PACKAGES = {
    "langsmith": ("langsmith[otel]==0.15.0",),
    "openinference": ("openinference-instrumentation-langchain==0.1.80",),
    "openllmetry": ("opentelemetry-instrumentation-langchain==0.62.4",),
}


def venv_python(cache: Path, peer: str) -> Path:
    return cache / peer / "bin" / "python"


def ensure(cache: Path, peer: str) -> tuple[Path | None, str]:
    """(the venv's python, "") when ready, else (None, the reason)."""
    pins = (*COMMON, *PEER_PACKAGES[peer])
    stamp_value = hashlib.sha1("\n".join(pins).encode()).hexdigest()
    root = cache / peer
    stamp = root / ".installed"
    python = venv_python(cache, peer)
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
    parser.add_argument("peers", nargs="*", help=f"any of {', '.join(PEER_PACKAGES)} (default: all)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    unknown = set(args.peers) - set(PEER_PACKAGES)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEER_PACKAGES)}")
    args.peers = args.peers or list(PEER_PACKAGES)
    failed = 0
    for peer in args.peers:
        python, reason = ensure(args.cache, peer)
        print(f"{peer}: {python}" if python else f"{peer}: NOT INSTALLED: {reason}", flush=True)
        failed += python is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
