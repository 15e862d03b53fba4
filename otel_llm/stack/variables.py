"""The local stack's and the collector configs' variables: their prefixes, their old names, and the rename.

The library's runtime switches are ``OTEL_LLM_*`` (``otel_llm/settings.py``). What only the local stack reads
has a prefix of its own, ``OTEL_LLM_STACK_*``: ports, directories and binaries of ``otel-llm stack`` and of
its collector, Jaeger, Prometheus and Redis on 127.0.0.1. What tunes the collector's pipeline wherever it runs
(the local stack, a production agent or gateway) is ``OTEL_LLM_COLLECTOR_*``. docs/configuration.md, "Which
prefix", says which is which and why.

``RENAMED`` maps each new name to the name it had before. The old names keep working for one release:
``with_new_names`` and ``lookup`` take an old name's value when its new name is unset, with ONE warning per
old name per process naming the new name; when both are set the new one wins and the old one gets a warning
that it is ignored. Cost: a dict scan per ``otel-llm stack`` command or URL lookup; nothing on any span path.

``python -m otel_llm.stack.variables --rename PATHS...`` rewrites every old name to its new one in the text
files under PATHS (idempotent; lines between one holding ``old-names:begin`` and one holding
``old-names:end`` are left alone); ``--check PATHS...`` lists the old names still there and exits 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from otel_llm.settings import warn_once

LIBRARY_PREFIX = "OTEL_LLM_"
STACK_PREFIX = "OTEL_LLM_STACK_"
COLLECTOR_PREFIX = "OTEL_LLM_COLLECTOR_"

# Each renamed variable is its old name with STACK_ or COLLECTOR_ inserted after OTEL_LLM_.
_STACK_RENAMED = (
    "COLLECTOR_OTLP_GRPC_PORT", "COLLECTOR_OTLP_HTTP_PORT", "COLLECTOR_HEALTH_PORT",
    "COLLECTOR_PROMETHEUS_PORT", "COLLECTOR_TELEMETRY_PORT",
    "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT", "JAEGER_QUERY_HTTP_PORT", "JAEGER_QUERY_GRPC_PORT",
    "JAEGER_HEALTH_PORT", "JAEGER_TELEMETRY_PORT", "JAEGER_BADGER_DIR", "JAEGER_BINARY",
    "PROMETHEUS_PORT", "PROMETHEUS_SCRAPE_INTERVAL", "REDIS_PORT", "STATE_DIR", "CACHE_DIR",
    # The listeners of `otel-llm stack up --topology gateway` beside agent-1's (otel_llm/stack/run.py).
    *(f"{tier}_{role}_PORT" for tier, roles in (
        ("GATEWAY1", ("OTLP_GRPC", "OTLP_HTTP", "HEALTH", "TELEMETRY")),
        ("GATEWAY2", ("OTLP_GRPC", "OTLP_HTTP", "HEALTH", "TELEMETRY", "PROMETHEUS")),
        ("AGENT2", ("OTLP_GRPC", "OTLP_HTTP", "HEALTH", "TELEMETRY"))) for role in roles),
)
_COLLECTOR_RENAMED = (
    "SPANMETRICS_FLUSH_INTERVAL", "SERIES_EXPIRATION",
    "SAMPLING_PERCENTAGE", "SAMPLING_SLOW_MS", "SAMPLING_COST_ABOVE", "SAMPLING_WAIT", "SAMPLING_MAX_TRACES",
    "GATEWAYS", "GATEWAY_ENDPOINT", "DOWNSTREAM_ENDPOINT",
    "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "TLS_CA_FILE",
)
RENAMED: Mapping[str, str] = MappingProxyType({
    **{STACK_PREFIX + name: LIBRARY_PREFIX + name for name in _STACK_RENAMED},
    **{COLLECTOR_PREFIX + name: LIBRARY_PREFIX + name for name in _COLLECTOR_RENAMED},
})
NEW_NAMES: Mapping[str, str] = MappingProxyType({old: new for new, old in RENAMED.items()})

_DEPRECATED = "%s is deprecated and goes away in the next release: it is read as %s; set that instead"
_IGNORED = "%s is ignored because %s is set; unset it (the old name goes away in the next release)"


def _pick(new: str, environ: Mapping[str, str], warn: bool) -> str | None:
    """``new``'s value, else its old name's; warns once per old name found (used or ignored)."""
    old = RENAMED.get(new)
    if old is None or old not in environ:
        return environ.get(new)
    if warn:
        warn_once(f"renamed:{old}", *((_IGNORED, old, new) if new in environ else (_DEPRECATED, old, new)))
    return environ.get(new, environ[old])


def lookup(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of variable ``name`` in ``environ`` (default ``os.environ``), or of its old name when only
    that is set (one warning per process naming both); None when neither is set."""
    return _pick(name, os.environ if environ is None else environ, warn=True)


def with_new_names(environ: Mapping[str, str], *, warn: bool = True) -> dict[str, str]:
    """A copy of ``environ`` in which each unset new name holds its old name's value (the old name stays).

    ``warn``: one warning per old name per process (False for names this package wrote itself, e.g. a
    ``stack.json`` recorded by the previous release).
    """
    renamed = dict(environ)
    for new, old in RENAMED.items():
        if old in environ:
            renamed[new] = _pick(new, environ, warn)
    return renamed


# --- the rename of the source tree

_BEGIN, _END = "old-names:begin", "old-names:end"
_SKIPPED_DIRS = frozenset({".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache",
                           "build", "dist"})
_OLD_NAME = re.compile(r"(?<![A-Za-z0-9_])(?:{})(?![A-Za-z0-9_])".format(
    "|".join(map(re.escape, sorted(NEW_NAMES, key=len, reverse=True)))))


def _outside_markers(text: str) -> Iterator[tuple[bool, str]]:
    """Each line of ``text`` (ends kept), with True when it is outside an old-names:begin/end block."""
    inside = False
    for line in text.splitlines(keepends=True):
        inside = inside or _BEGIN in line
        yield not inside, line
        inside = inside and _END not in line


def rename_text(text: str) -> str:
    """``text`` with every old name outside the old-names blocks replaced by its new name."""
    return "".join(_OLD_NAME.sub(lambda match: NEW_NAMES[match.group()], line) if outside else line
                   for outside, line in _outside_markers(text))


def old_names_in(text: str) -> list[str]:
    """The old names ``text`` still holds outside old-names blocks, each once, in order of appearance."""
    found = (_OLD_NAME.findall(line) for outside, line in _outside_markers(text) if outside)
    return list(dict.fromkeys(name for names in found for name in names))


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for directory, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name not in _SKIPPED_DIRS and not name.endswith(".egg-info")]
        yield from (Path(directory) / name for name in files)


def text_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """Every UTF-8 text file under ``paths`` with its text: no symlinks, no VCS, venv or cache directories."""
    for path in (path for root in paths for path in _files(root)):
        if path.is_symlink():
            continue
        try:
            text = path.read_bytes().decode()
        except UnicodeDecodeError:
            continue
        if "\0" not in text:
            yield path, text


def rename(paths: Sequence[Path]) -> list[Path]:
    """Rewrite old names to new ones in every text file under ``paths``; the files that changed."""
    changed = []
    for path, text in text_files(paths):
        renamed = rename_text(text)
        if renamed != text:
            path.write_text(renamed)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otel_llm.stack.variables",
                                     description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--rename", nargs="+", type=Path, metavar="PATH",
                        help="rewrite every old name to its new one in the text files under PATH")
    action.add_argument("--check", nargs="+", type=Path, metavar="PATH",
                        help="list the files under PATH that still hold an old name; exit 1 when any does")
    args = parser.parse_args(argv)
    if args.rename:
        for path in rename(args.rename):
            print(f"renamed in {path}")
        return 0
    stale = {path: old_names_in(text) for path, text in text_files(args.check)}
    for path, names in stale.items():
        if names:
            print(f"{path}: {', '.join(names)}")
    return 1 if any(stale.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
