"""The ``otel-llm`` command: one subcommand per module of this package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit code, and ``extra`` to the optional dependency
group (pyproject.toml) the handler imports, if any. Modules are imported only to build the parser; anything
heavy is imported by the handler itself, so ``otel-llm --help`` stays fast. A handler whose extra is not
installed exits 2 with one line naming the extra and how to install it, not a traceback. A reader that
closes the pipe early (``otel-llm stack status | head -3``) ends the command quietly, as it would ``cat``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMAND_MODULES = (
    "otel_llm.cli.demo",
    "otel_llm.cli.stack",
    "otel_llm.cli.search",
    "otel_llm.cli.ab",
    "otel_llm.cli.trace",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-llm",
        description=(
            "OpenTelemetry for LLM apps: run the demo, the local stack, and search traces by provider/model."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


EXIT_MISSING_EXTRA = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE (128 + 13)


def missing_extra(command: str, extra: str, module: str | None) -> str:
    """The one line for a command whose extra is not installed (the package is installed from a clone)."""
    return (
        f"otel-llm {command}: needs the '{extra}' extra ({module or 'a module'} is not installed): "
        f"pip install '.[{extra}]' in the otel-llm clone"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # here, not at interpreter exit, so a closed pipe is caught below
        return code
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so the exit-time flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except ModuleNotFoundError as exc:
        extra = getattr(args, "extra", None)
        if extra is None or (exc.name or "").partition(".")[0] == "otel_llm":
            raise
        print(missing_extra(args.command, extra, exc.name), file=sys.stderr)
        return EXIT_MISSING_EXTRA


if __name__ == "__main__":
    sys.exit(main())
