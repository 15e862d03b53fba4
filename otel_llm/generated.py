"""The command line of every generator of a committed file: ``python -m <module> [--write | --check]``.

A generator says which files it owns and the text each should hold now. ``--write`` rewrites the stale ones,
``--check`` exits 1 when one is stale (each generator's unit test runs it; ``make generate`` runs every
``--write``), no flag prints the generator's preview. Only the tools run it, never an instrumented process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def main(argv: list[str] | None, module: str, description: str, expected: Callable[[], Mapping[Path, str]],
         preview: Callable[[], str] | None = None) -> int:
    """Parse ``argv`` and print, write or check the files ``expected()`` maps to their text. Without a flag:
    ``preview()``, or each file's status when there is no preview."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated files that are stale")
    action.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    if preview is not None and not (args.write or args.check):
        sys.stdout.write(preview())
        return 0
    stale = 0
    for path, text in expected().items():
        current = path.is_file() and path.read_text() == text
        if args.write:
            if not current:
                path.write_text(text)
            print(f"{path}: {'already current' if current else 'updated'}")
        else:
            print(f"{path}: {'current' if current else f'STALE: run python -m {module} --write'}")
            stale += not current
    return 1 if args.check and stale else 0
