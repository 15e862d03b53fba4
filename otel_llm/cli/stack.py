"""``otel-llm stack build|up|down|status|logs``: build the binaries and run the local stack (docs/stack.md).

Each command works on one state directory (``--state-dir``, default ``$OTEL_LLM_STACK_STATE_DIR`` or
``~/.local/state/otel-llm``). ``up`` takes ports from the ``OTEL_LLM_STACK_*_PORT`` variables (defaults in
docs/stack.md); once a stack runs, ``status``, ``logs``, ``down`` and a second ``up`` use the ports it
recorded. ``status`` exits 0 when every component is healthy, 3 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable

from otel_llm.stack.run import (  # stdlib-only module: cheap for --help
    COMPONENTS_BY_NAME,
    JAEGER_BINARY_ENV,
    JAEGER_CONFIGS,
    TOPOLOGIES,
)

DEFAULT_LOG_LINES = 50
FOLLOW_INTERVAL_SECONDS = 0.25


def _reporting_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command; a ``StackError`` (a setting or state the user must fix) becomes one line and exit 1."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from otel_llm.stack.run import StackError

        try:
            return handler(args)
        except StackError as exc:
            print(f"otel-llm stack {args.stack_command}: {exc}", file=sys.stderr)
            return 1

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stack", help="build, start, stop and inspect the local collector/Jaeger/"
                                                 "Prometheus/Redis stack")
    parser.add_argument("--state-dir", help="pid files, logs and data (default $OTEL_LLM_STACK_STATE_DIR or "
                                            "~/.local/state/otel-llm)")
    parser.set_defaults(extra="stack")  # PyYAML: the collector's build manifest names the binary to run
    commands = parser.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    commands.add_parser("build", help="build the collector and Jaeger, install prometheus and redis-server "
                                      "(only what is missing)").set_defaults(handler=_build)
    up = commands.add_parser("up", help="start every component not running and wait until all are healthy")
    up.add_argument("--jaeger-storage", choices=sorted(JAEGER_CONFIGS), default="badger",
                    help="badger keeps traces across restarts (default); memory is for quick runs")
    up.add_argument("--topology", choices=sorted(TOPOLOGIES), default="single",
                    help="single: one collector (default); gateway: two agents routing by trace id to two "
                         "tail-sampling gateways (docs/deploy.md)")
    up.add_argument("--json", action="store_true", help="print the status as JSON once up")
    up.add_argument("--jaeger-binary", metavar="PATH", default=None,
                    help="run this Jaeger v2 binary (e.g. the official release, with the UI) instead of the "
                         "built one, with the same config (default $OTEL_LLM_STACK_JAEGER_BINARY)")
    up.set_defaults(handler=_reporting_errors(_up))
    down = commands.add_parser("down", help="stop every component (ok when already stopped)")
    down.set_defaults(handler=_reporting_errors(_down))
    status = commands.add_parser("status", help="endpoints and health of each component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_reporting_errors(_status))
    logs = commands.add_parser("logs", help="the last lines of each component's log")
    logs.add_argument("component", nargs="?", choices=list(COMPONENTS_BY_NAME),
                      help="one component (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=DEFAULT_LOG_LINES, help="lines per component")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="then keep printing what the logs get, each line prefixed with its component, "
                           "until Ctrl-C")
    logs.set_defaults(handler=_reporting_errors(_logs))


def _state_dir(args: argparse.Namespace):
    from pathlib import Path

    from otel_llm.stack.run import default_state_dir

    return Path(args.state_dir).expanduser() if args.state_dir else default_state_dir()


def _recorded_or_new(args: argparse.Namespace, **kwargs):
    from otel_llm.stack.run import Stack

    state_dir = _state_dir(args)
    return Stack.load(state_dir) or Stack.create(state_dir, **kwargs)


def _build(args: argparse.Namespace) -> int:
    from otel_llm.stack.build import main

    return int(main([]) or 0)


def _up(args: argparse.Namespace) -> int:
    from otel_llm.stack.run import Stack

    state_dir = _state_dir(args)
    recorded = Stack.load(state_dir)
    # A recorded stack with a live component is the one to complete; otherwise start afresh from the env.
    if recorded is not None and any(recorded.pid(c.name) is not None for c in recorded.components):
        stack = recorded
    else:
        overrides = {JAEGER_BINARY_ENV: args.jaeger_binary} if args.jaeger_binary else None
        stack = Stack.create(state_dir, jaeger_storage=args.jaeger_storage, overrides=overrides,
                             components=TOPOLOGIES[args.topology])
    _print_status(stack.up(), as_json=args.json)
    return 0


def _down(args: argparse.Namespace) -> int:
    from otel_llm.stack.run import Stack

    stack = Stack.load(_state_dir(args))
    if stack is not None:
        stack.down()
    print("stack stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _recorded_or_new(args).status()
    _print_status(status, as_json=args.json)
    return 0 if all(c["healthy"] for c in status["components"].values()) else 3


def _logs(args: argparse.Namespace) -> int:
    stack = _recorded_or_new(args)
    names = [args.component] if args.component else [c.name for c in stack.components]
    for name in names:
        print(f"==> {stack.log_file(name)} <==")
        print(stack.tail(name, args.lines))
    if args.follow:
        _follow({name: stack.log_file(name) for name in names})
    return 0


def _follow(logs: dict, interval: float = FOLLOW_INTERVAL_SECONDS) -> None:
    """Print the lines appended to each log from now on as ``<component> | line``, until Ctrl-C."""
    import time

    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in logs.items()}
    pending = dict.fromkeys(logs, b"")
    try:
        while True:
            for name, path in logs.items():
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                if size < offsets[name]:  # truncated or replaced: start over
                    offsets[name] = 0
                if size == offsets[name]:
                    continue
                with open(path, "rb") as log:
                    log.seek(offsets[name])
                    data = pending[name] + log.read(size - offsets[name])
                offsets[name] = size
                *lines, pending[name] = data.split(b"\n")
                for line in lines:
                    print(f"{name} | {line.decode(errors='replace')}", flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _print_status(status: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return
    print(f"state dir: {status['state_dir']}")
    for name, component in status["components"].items():
        if component["healthy"]:
            health = "healthy"
        else:
            health = "running, unhealthy" if component["running"] else "stopped"
        pid = f"pid={component['pid']}" if component["running"] else "-"
        print(f"  {name:<11} {health:<19} {pid:<11} log={component['log']}")
    for name, endpoint in status["endpoints"].items():
        print(f"  {name:<17} {endpoint}")
