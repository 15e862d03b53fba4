"""Run the local stack: the collector, Jaeger, Prometheus and Redis as background processes on 127.0.0.1.

One ``Stack`` is rooted at a state directory (default ``$OTEL_LLM_STACK_STATE_DIR`` or
``~/.local/state/otel-llm``) that holds, per component, a pid file (``<name>.pid``: pid and binary path)
and a log (``logs/<name>.log``), plus the data directories (badger, the collector's persistent queue, the
Prometheus TSDB, Redis' working dir) and ``stack.json``: the ports and settings the stack was started with,
so ``status``/``down`` and a second ``up`` see the same stack. Secrets (``LANGSMITH_API_KEY``) are never
written there.

Every component is started in its own process group (``start_new_session``) and stopped by signalling the
group, so no process outlives ``down``. ``up`` is idempotent: a component whose recorded process is alive is
left alone. Ports and data directories reach the configs as the environment variables listed in docs/stack.md;
the ports come from the same variables in the caller's environment, or are all picked free at random (tests).

Start order follows the data path backwards: Redis, Prometheus, Jaeger, then the collector exporting into
them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from otel_llm.settings import env_int
from otel_llm.stack import paths
from otel_llm.stack.build import BUILD_COMMAND, StackBinaries, find_binaries
from otel_llm.stack.prometheus import write_prometheus_config
from otel_llm.stack.variables import lookup, with_new_names

STATE_DIR_ENV = "OTEL_LLM_STACK_STATE_DIR"
DEFAULT_STATE_DIR = Path("~/.local/state/otel-llm")
STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
HOST = "127.0.0.1"
HEALTH_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_INTERVAL_SECONDS = 0.1
HTTP_PROBE_TIMEOUT_SECONDS = 1.0
TCP_LISTEN_STATE = "0A"  # the "st" column of /proc/net/tcp
# Variables passed from the caller's environment to the configs when set (docs/stack.md); secrets are
# never persisted.
# A Jaeger binary of the user's (e.g. the official release, which serves the UI) run instead of the built one,
# with the same config; recorded with the stack like the rest of its settings.
JAEGER_BINARY_ENV = "OTEL_LLM_STACK_JAEGER_BINARY"
# Jaeger's SPM backend (jaeger/config*.yaml), always set by the runner from the Prometheus port.
SPM_PROMETHEUS_URL_ENV = "OTEL_LLM_STACK_PROMETHEUS_URL"
PASSTHROUGH_VARIABLES = (
    JAEGER_BINARY_ENV,
    "OTEL_LLM_COLLECTOR_MEMORY_LIMIT_MIB",
    "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL",
    "OTEL_LLM_COLLECTOR_SERIES_EXPIRATION",
    "OTEL_LLM_COLLECTOR_ROLLUP_WAIT",
    "OTEL_LLM_COLLECTOR_ROLLUP_MAX_TRACES",
    "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL",
    "OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE",
    "OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS",
    "OTEL_LLM_COLLECTOR_SAMPLING_COST_ABOVE",
    "OTEL_LLM_COLLECTOR_SAMPLING_WAIT",
    "OTEL_LLM_COLLECTOR_SAMPLING_MAX_TRACES",
    "LANGSMITH_PROJECT",
    "LANGSMITH_ENDPOINT",
)
LANGSMITH_API_KEY = "LANGSMITH_API_KEY"
SECRET_VARIABLES = (LANGSMITH_API_KEY,)
# Jaeger storage choice -> its config: badger persists across restarts; memory is for quick runs.
JAEGER_CONFIGS = {"badger": paths.JAEGER_CONFIG, "memory": paths.JAEGER_CONFIG_MEMORY}


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class PortSpec:
    """One listening port: the variable that sets it, its default, and what it serves."""

    env_var: str
    default: int
    purpose: str


@dataclass(frozen=True)
class Component:
    """A process of the stack: its binary (``StackBinaries`` field), ports, command line and health probe, and
    the variables its process gets on top of the stack's (``env``)."""

    name: str
    binary_field: str
    ports: tuple[PortSpec, ...]
    command: Callable[[Stack, Path], list[str]]
    healthy: Callable[[Stack], bool]
    env: Callable[[Stack], dict[str, str]] = lambda stack: {}


COLLECTOR_OTLP_GRPC = PortSpec("OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT", 4317, "collector OTLP/gRPC")
COLLECTOR_OTLP_HTTP = PortSpec("OTEL_LLM_STACK_COLLECTOR_OTLP_HTTP_PORT", 4318, "collector OTLP/HTTP")
COLLECTOR_HEALTH = PortSpec("OTEL_LLM_STACK_COLLECTOR_HEALTH_PORT", 13133, "collector health_check")
COLLECTOR_PROMETHEUS = PortSpec("OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT", 8889,
                                "collector prometheus exporter")
COLLECTOR_TELEMETRY = PortSpec("OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT", 8888, "collector own metrics")
JAEGER_OTLP_GRPC = PortSpec("OTEL_LLM_STACK_JAEGER_OTLP_GRPC_PORT", 14317, "Jaeger OTLP/gRPC")
JAEGER_OTLP_HTTP = PortSpec("OTEL_LLM_STACK_JAEGER_OTLP_HTTP_PORT", 14318, "Jaeger OTLP/HTTP")
JAEGER_QUERY_HTTP = PortSpec("OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT", 16686, "Jaeger query HTTP")
JAEGER_QUERY_GRPC = PortSpec("OTEL_LLM_STACK_JAEGER_QUERY_GRPC_PORT", 16685, "Jaeger query gRPC")
JAEGER_HEALTH = PortSpec("OTEL_LLM_STACK_JAEGER_HEALTH_PORT", 14133, "Jaeger healthcheckv2")
JAEGER_TELEMETRY = PortSpec("OTEL_LLM_STACK_JAEGER_TELEMETRY_PORT", 14888, "Jaeger own metrics")
PROMETHEUS = PortSpec("OTEL_LLM_STACK_PROMETHEUS_PORT", 9090, "Prometheus")
REDIS = PortSpec("OTEL_LLM_STACK_REDIS_PORT", 6379, "Redis")


# Characters a key cannot have, and why: the collector puts the key inside an OTTL string literal
# (filter/langsmith_off), expands `$` in environment values (`${env:HOME}`, `$$`), and sends the key as an
# HTTP header.
_KEY_PROBLEMS = (
    (lambda c: c == '"', 'a double quote (")'),
    (lambda c: c == "\\", "a backslash (\\)"),
    (lambda c: c == "$", "a dollar sign ($), which the collector would expand"),
    (str.isspace, "whitespace"),
    (lambda c: not " " < c < "\x7f", "a control or non-ASCII character"),
)


def langsmith_api_key(raw: str) -> str:
    """The LangSmith API key as the collector gets it: stripped, '' (export off) when blank.

    A key must be printable ASCII without whitespace, ``"``, ``\\`` or ``$`` (see ``_KEY_PROBLEMS``); any
    other raises a ``StackError`` that says what is wrong with it, never the key itself.
    """
    key = raw.strip()
    for is_problem, problem in _KEY_PROBLEMS:
        if any(map(is_problem, key)):
            raise StackError(
                f"{LANGSMITH_API_KEY} contains {problem}; a LangSmith API key is printable ASCII without "
                "whitespace, double quotes, backslashes or dollar signs. Set it to your key, or unset it to "
                "turn LangSmith export off (the key is not shown here)."
            )
    return key


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_PROBE_TIMEOUT_SECONDS) as response:
            return response.status == 200
    except Exception:  # refused, reset, timeout, non-2xx: all mean "not healthy yet"
        return False


def redis_ping(port: int) -> bool:
    """True when a Redis server on 127.0.0.1:port answers PING with PONG."""
    try:
        with socket.create_connection((HOST, port), timeout=HTTP_PROBE_TIMEOUT_SECONDS) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _collector_command(stack: Stack, binary: Path) -> list[str]:
    return [str(binary), "--config", str(paths.COLLECTOR_CONFIG)]


def _jaeger_command(stack: Stack, binary: Path) -> list[str]:
    return [str(binary), "--config", str(JAEGER_CONFIGS[stack.jaeger_storage])]


def _prometheus_command(stack: Stack, binary: Path) -> list[str]:
    config = write_prometheus_config(stack.state_dir / "prometheus.yml", stack.env)
    return [
        str(binary),
        f"--config.file={config}",
        f"--web.listen-address={HOST}:{stack.port(PROMETHEUS)}",
        f"--storage.tsdb.path={stack.state_dir / 'prometheus-data'}",
    ]


def _redis_command(stack: Stack, binary: Path) -> list[str]:
    data_dir = stack.state_dir / "redis-data"
    data_dir.mkdir(exist_ok=True)
    # No persistence (no RDB snapshots, no AOF): a scratch queue for the demo and tests.
    return [str(binary), "--bind", HOST, "--port", str(stack.port(REDIS)), "--save", "", "--appendonly", "no",
            "--dir", str(data_dir), "--protected-mode", "yes", "--daemonize", "no"]


def _tier_port(name: str, role: PortSpec, default: int) -> PortSpec:
    """The port variable of a gateway-topology collector serving ``role``: ..._GATEWAY2_OTLP_GRPC_PORT, ..."""
    prefix, _, port = role.env_var.partition("_COLLECTOR_")
    variable = f"{prefix}_{name.upper().replace('-', '')}_{port}"
    return PortSpec(variable, default, f"{name} {role.purpose.removeprefix('collector ')}")


def _tier_collector(name: str, configs: tuple[Path, ...], listeners: Mapping[PortSpec, PortSpec],
                    env: Callable[[Stack], dict[str, str]]) -> Component:
    """A collector of the gateway topology; ``listeners``: each config variable (COLLECTOR_*) -> its port."""
    flags = [part for config in configs for part in ("--config", str(config))]
    return Component(
        name, "collector", tuple(listeners.values()), lambda stack, binary: [str(binary), *flags],
        lambda s: _http_ok(f"http://{HOST}:{s.port(listeners[COLLECTOR_HEALTH])}/"),
        lambda stack: {**{role.env_var: str(stack.port(spec)) for role, spec in listeners.items()},
                       **env(stack)})


# The gateway topology (docs/deploy.md): two agents routing by trace id to two gateways. agent-1 listens on
# the single collector's OTLP, health and telemetry ports (apps and the CLI's endpoints stay the same),
# gateway-1's span metrics on the collector's exporter port; every other listener has a variable of its own.
_AGENT_ROLES = (COLLECTOR_OTLP_GRPC, COLLECTOR_OTLP_HTTP, COLLECTOR_HEALTH, COLLECTOR_TELEMETRY)
_GATEWAY_ROLES = (*_AGENT_ROLES, COLLECTOR_PROMETHEUS)
_TIER_LISTENERS = {
    name: {role: _tier_port(name, role, base + offset) for offset, role in enumerate(roles)}
    for name, base, roles in (("gateway-1", 4417, _AGENT_ROLES), ("gateway-2", 4427, _GATEWAY_ROLES),
                              ("agent-2", 4337, _AGENT_ROLES))}
_TIER_LISTENERS["gateway-1"][COLLECTOR_PROMETHEUS] = COLLECTOR_PROMETHEUS
_TIER_LISTENERS["agent-1"] = {role: role for role in _AGENT_ROLES}
GATEWAYS = ("gateway-1", "gateway-2")
# Where the agents send (collector/agent.yaml): the gateways' OTLP gRPC listeners.
GATEWAYS_ENV = "OTEL_LLM_COLLECTOR_GATEWAYS"


def _agent_env(stack: Stack) -> dict[str, str]:
    """Where an agent sends: each gateway the stack runs (a stack of one gateway: that one)."""
    running = {component.name for component in stack.components}
    return {GATEWAYS_ENV: ",".join(f"{HOST}:{stack.port(_TIER_LISTENERS[name][COLLECTOR_OTLP_GRPC])}"
                                   for name in GATEWAYS if name in running)}


def _gateway_env(name: str) -> Callable[[Stack], dict[str, str]]:
    return lambda stack: {"OTEL_LLM_COLLECTOR_STORAGE_DIR": str(stack.state_dir / f"{name}-storage")}


COMPONENTS: tuple[Component, ...] = (
    Component("redis", "redis_server", (REDIS,), _redis_command, lambda s: redis_ping(s.port(REDIS))),
    Component("prometheus", "prometheus", (PROMETHEUS,), _prometheus_command,
              lambda s: _http_ok(f"{s.prometheus_url}/-/ready")),
    Component("jaeger", "jaeger",
              (JAEGER_OTLP_GRPC, JAEGER_OTLP_HTTP, JAEGER_QUERY_HTTP, JAEGER_QUERY_GRPC, JAEGER_HEALTH,
               JAEGER_TELEMETRY),
              _jaeger_command,
              lambda s: _http_ok(f"http://{HOST}:{s.port(JAEGER_HEALTH)}/status")
              and _http_ok(f"{s.jaeger_query_url}/")),
    Component("collector", "collector",
              (COLLECTOR_OTLP_GRPC, COLLECTOR_OTLP_HTTP, COLLECTOR_HEALTH, COLLECTOR_PROMETHEUS,
               COLLECTOR_TELEMETRY),
              _collector_command,
              lambda s: _http_ok(f"http://{HOST}:{s.port(COLLECTOR_HEALTH)}/")),
    *(_tier_collector(name, paths.COLLECTOR_GATEWAY_CONFIGS, _TIER_LISTENERS[name], _gateway_env(name))
      for name in GATEWAYS),
    *(_tier_collector(name, (paths.COLLECTOR_AGENT_CONFIG,), _TIER_LISTENERS[name], _agent_env)
      for name in ("agent-1", "agent-2")),
)
COMPONENTS_BY_NAME = {component.name: component for component in COMPONENTS}
# What `otel-llm stack up --topology` starts, in start order (the data path backwards).
TOPOLOGIES = {
    "single": ("redis", "prometheus", "jaeger", "collector"),
    "gateway": ("redis", "prometheus", "jaeger", *GATEWAYS, "agent-1", "agent-2"),
}


def ports_of(components: Sequence[str]) -> tuple[PortSpec, ...]:
    """Every port the named components listen on, each once (unknown names are ``Stack``'s to reject)."""
    return tuple(dict.fromkeys(spec for name in components if name in COMPONENTS_BY_NAME
                               for spec in COMPONENTS_BY_NAME[name].ports))


ALL_PORTS: tuple[PortSpec, ...] = ports_of(TOPOLOGIES["single"])


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$OTEL_LLM_STACK_STATE_DIR``, else ``~/.local/state/otel-llm``."""
    raw = (lookup(STATE_DIR_ENV, environ) or "").strip()
    return Path(raw or DEFAULT_STATE_DIR).expanduser()


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (all held open together so none repeats)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:port now (SO_REUSEADDR, as the servers themselves do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket on this host: inode -> (local address as /proc writes it in hex, port)."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == TCP_LISTEN_STATE:
                    address, port = fields[1].rsplit(":", 1)
                    sockets[fields[9]] = (address, int(port, 16))
    return sockets


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets a process has open (empty when /proc does not tell)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
    return inodes


def port_holder(port: int) -> str | None:
    """``"pid N (command)"`` of the process listening on a TCP port, when /proc tells (same user or root)."""
    inodes = {inode for inode, (_, listening_port) in listening_sockets().items() if listening_port == port}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and socket_inodes(int(proc.name)) & inodes:
            with contextlib.suppress(OSError):
                command = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                return f"pid {proc.name} ({command})"
    return None


def resolve_ports(environ: Mapping[str, str], *, random_ports: bool = False,
                  specs: Sequence[PortSpec] = ALL_PORTS) -> dict[str, int]:
    """Each port variable's value: from ``environ`` (a bad value warns once and defaults), or all random."""
    if random_ports:
        return dict(zip((spec.env_var for spec in specs), free_ports(len(specs)), strict=True))
    return {spec.env_var: env_int(spec.env_var, spec.default, minimum=1, maximum=65535, environ=environ)
            for spec in specs}


class Stack:
    """The local stack rooted at ``state_dir``; ``env`` holds the variables the configs read (docs/stack.md).

    Build one with ``Stack.create`` (fresh settings from an environment, optionally on random ports) or
    ``Stack.load`` (the settings a running stack recorded in ``stack.json``).
    """

    def __init__(
        self,
        state_dir: Path,
        env: Mapping[str, str],
        *,
        components: Sequence[str] = TOPOLOGIES["single"],
        jaeger_storage: str = "badger",
        binaries: StackBinaries | None = None,
    ) -> None:
        unknown = [name for name in components if name not in COMPONENTS_BY_NAME]
        if unknown:
            raise ValueError(f"components must be among {sorted(COMPONENTS_BY_NAME)}, got {unknown}")
        if jaeger_storage not in JAEGER_CONFIGS:
            raise ValueError(
                f"jaeger_storage must be one of {sorted(JAEGER_CONFIGS)}, got {jaeger_storage!r}")
        missing_ports = [spec.env_var for spec in ports_of(components)
                         if not str(env.get(spec.env_var, "")).isdigit()]
        if missing_ports:
            raise ValueError(f"env must set every port variable to a number; missing {missing_ports}")
        self.state_dir = Path(state_dir).expanduser().resolve()
        # Always set, so the collector never falls back to a raw key from the caller's own environment and
        # `status` reports exactly what the collector compares.
        self.env = {**env, LANGSMITH_API_KEY: langsmith_api_key(env.get(LANGSMITH_API_KEY, ""))}
        self.components = tuple(COMPONENTS_BY_NAME[name] for name in COMPONENTS_BY_NAME if name in components)
        self.jaeger_storage = jaeger_storage
        self._binaries = binaries
        self._processes: dict[str, subprocess.Popen] = {}

    # --- construction
    @classmethod
    def create(
        cls,
        state_dir: Path,
        environ: Mapping[str, str] | None = None,
        *,
        random_ports: bool = False,
        overrides: Mapping[str, str] | None = None,
        **kwargs,
    ) -> Stack:
        """Ports from ``environ`` (or random), data dirs inside ``state_dir``, then ``overrides`` on top."""
        environ = with_new_names(os.environ if environ is None else environ)
        state_dir = Path(state_dir).expanduser().resolve()
        ports = resolve_ports(environ, random_ports=random_ports,
                              specs=ports_of((*TOPOLOGIES["single"], *kwargs.get("components", ()))))
        env = {name: str(port) for name, port in ports.items()}
        passed = PASSTHROUGH_VARIABLES + SECRET_VARIABLES
        env.update({name: environ[name] for name in passed if name in environ})
        env["OTEL_LLM_COLLECTOR_STORAGE_DIR"] = str(state_dir / "collector-storage")
        env["OTEL_LLM_STACK_JAEGER_BADGER_DIR"] = str(state_dir / "jaeger-badger")
        env[SPM_PROMETHEUS_URL_ENV] = f"http://{HOST}:{ports[PROMETHEUS.env_var]}"
        env.update(with_new_names(overrides or {}))
        return cls(state_dir, env, **kwargs)

    @classmethod
    def load(cls, state_dir: Path, environ: Mapping[str, str] | None = None) -> Stack | None:
        """The stack recorded in ``state_dir/stack.json`` (secrets from ``environ``), or None."""
        state_dir = Path(state_dir).expanduser().resolve()
        try:
            recorded = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        environ = os.environ if environ is None else environ
        env = with_new_names(recorded["env"], warn=False)  # a stack.json of the previous release: old names
        env.update({name: environ[name] for name in SECRET_VARIABLES if name in environ})
        return cls(state_dir, env, components=recorded["components"],
                   jaeger_storage=recorded["jaeger_storage"])

    def _save(self) -> None:
        recorded = {
            "env": {name: value for name, value in self.env.items() if name not in SECRET_VARIABLES},
            "components": [component.name for component in self.components],
            "jaeger_storage": self.jaeger_storage,
        }
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")

    # --- endpoints
    def port(self, spec: PortSpec) -> int:
        return int(self.env[spec.env_var])

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"{HOST}:{self.port(COLLECTOR_OTLP_GRPC)}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{HOST}:{self.port(COLLECTOR_OTLP_HTTP)}"

    @property
    def collector_metrics_url(self) -> str:
        return f"http://{HOST}:{self.port(COLLECTOR_PROMETHEUS)}/metrics"

    @property
    def jaeger_query_url(self) -> str:
        return f"http://{HOST}:{self.port(JAEGER_QUERY_HTTP)}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.port(PROMETHEUS)}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.port(REDIS)}/0"

    def endpoints(self) -> dict[str, str]:
        return {
            "otlp_grpc": self.otlp_grpc_endpoint,
            "otlp_http": self.otlp_http_endpoint,
            "collector_metrics": self.collector_metrics_url,
            "jaeger_query": self.jaeger_query_url,
            "prometheus": self.prometheus_url,
            "redis": self.redis_url,
        }

    # --- process bookkeeping
    def _pid_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of the component's live process, or None (a stale pid file is ignored)."""
        process = self._processes.get(name)
        if process is not None:
            return process.pid if process.poll() is None else None
        try:
            pid_text, binary = self._pid_file(name).read_text().split("\n")[:2]
            pid = int(pid_text)
            stat = Path(f"/proc/{pid}/stat").read_text()
            # The executable, not argv[0]: redis-server rewrites its argv; Debian's is a symlink.
            executable = os.readlink(f"/proc/{pid}/exe")
        except (OSError, ValueError):
            return None
        # A zombie, or a recycled pid now running something else, is not our component.
        state = stat.rsplit(")", 1)[1].split()[0]
        return pid if state != "Z" and executable == os.path.realpath(binary) else None

    def healthy(self, name: str) -> bool:
        return self.pid(name) is not None and COMPONENTS_BY_NAME[name].healthy(self)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down of one state dir across processes (two `otel-llm stack up` at once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _binaries_of(self, components: Sequence[Component]) -> dict[str, Path]:
        """Each component's binary (Jaeger's from ``$OTEL_LLM_STACK_JAEGER_BINARY`` when set); a StackError
        naming every missing one and the build command."""
        binaries = self._binaries if self._binaries is not None else find_binaries()
        found = {c.name: getattr(binaries, c.binary_field) for c in components}
        supplied = self.env.get(JAEGER_BINARY_ENV, "").strip()
        if supplied and "jaeger" in found:
            path = Path(supplied).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise StackError(f"{JAEGER_BINARY_ENV}={supplied!r} is not an executable file; set it to a "
                                 "Jaeger v2 binary (e.g. the official release's `jaeger`) or unset it")
            found["jaeger"] = path
        missing = [name for name, binary in found.items() if binary is None or not Path(binary).exists()]
        if missing:
            raise StackError(
                f"Missing binaries: {', '.join(missing)}. "
                f"Build them with `{BUILD_COMMAND}` (or `make stack-build`)."
            )
        return {name: Path(binary) for name, binary in found.items()}

    def _check_ports(self, component: Component) -> None:
        for spec in component.ports:
            port = self.port(spec)
            if not port_is_free(port):
                holder = port_holder(port)
                raise StackError(
                    f"Port {port} ({spec.purpose}) on {HOST} is already in use"
                    f"{f' by {holder}' if holder else ''}. "
                    f"Set {spec.env_var} to a free port, or stop what holds it."
                )

    # --- lifecycle
    def up(self, timeout: float = HEALTH_TIMEOUT_SECONDS) -> dict:
        """Start every component not already running, wait until all are healthy, and return ``status()``."""
        try:
            paths.require_stack_files()
        except paths.StackFilesNotFound as exc:
            raise StackError(str(exc)) from exc
        with self._locked():
            self._save()
            self._start_missing(self.components, timeout)
        return self.status()

    def down(self) -> None:
        """Stop every component (collector first, so it can flush); a stopped stack stays stopped."""
        with self._locked():
            for component in reversed(self.components):
                self._stop(component)

    def start(self, name: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        """Start one component (e.g. Jaeger after an outage) with the stack's recorded settings."""
        with self._locked():
            self._start_missing((COMPONENTS_BY_NAME[name],), timeout)

    def stop(self, name: str) -> None:
        """Stop one component; the others keep running."""
        with self._locked():
            self._stop(COMPONENTS_BY_NAME[name])

    def _start_missing(self, components: Sequence[Component], timeout: float) -> None:
        to_start = [component for component in components if self.pid(component.name) is None]
        # Binaries, ports and configs are all checked before anything starts: a failed `up` starts nothing.
        commands = {}
        binaries = self._binaries_of(to_start)
        for component in to_start:
            self._check_ports(component)
            try:
                commands[component.name] = component.command(self, binaries[component.name])
            except ValueError as exc:  # a setting the config cannot take, e.g. a bad scrape interval
                raise StackError(f"Cannot configure {component.name}: {exc}") from exc
        for component in components:
            if component.name in commands:
                self._launch(component, commands[component.name])
            self._wait_healthy(component, timeout)

    def _launch(self, component: Component, command: list[str]) -> None:
        log_path = self.log_file(component.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.process_env(), **component.env(self)},
                cwd=self.state_dir,
                start_new_session=True,
            )
        self._processes[component.name] = process
        self._pid_file(component.name).write_text(f"{process.pid}\n{command[0]}\n")

    def process_env(self) -> dict[str, str]:
        """The environment of every component: the caller's, overridden by the stack's settings (``env``)."""
        return {**with_new_names(os.environ), **self.env}

    def _wait_healthy(self, component: Component, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid(component.name) is None:
                raise StackError(f"{component.name} exited during start-up; last log lines:\n"
                                 f"{self.tail(component.name, 20)}")
            if component.healthy(self):
                return
            if time.monotonic() > deadline:
                raise StackError(f"{component.name} not healthy after {timeout:.0f}s; last log lines:\n"
                                 f"{self.tail(component.name, 20)}")
            time.sleep(POLL_INTERVAL_SECONDS)

    def _stop(self, component: Component) -> None:
        pid = self.pid(component.name)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while self.pid(component.name) is not None and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL_SECONDS)
            # Whatever is left of the group (children of a process that ignored SIGTERM) goes now.
            _signal_group(pid, signal.SIGKILL)
            process = self._processes.pop(component.name, None)
            if process is not None:
                process.wait()
        self._pid_file(component.name).unlink(missing_ok=True)

    # --- reporting
    def status(self) -> dict:
        """Endpoints, and per component: pid, running, healthy, log path (what `status --json` prints)."""
        components = {}
        for component in self.components:
            pid = self.pid(component.name)
            components[component.name] = {
                "pid": pid,
                "running": pid is not None,
                "healthy": pid is not None and component.healthy(self),
                "log": str(self.log_file(component.name)),
                "ports": {spec.env_var: self.port(spec) for spec in component.ports},
            }
        return {
            "state_dir": str(self.state_dir),
            "jaeger_storage": self.jaeger_storage,
            "langsmith_export": self.env[LANGSMITH_API_KEY] != "",
            "endpoints": self.endpoints(),
            "components": components,
        }

    def tail(self, name: str, lines: int = 50) -> str:
        """The last ``lines`` lines of a component's log ('' when it has none)."""
        try:
            text = self.log_file(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
