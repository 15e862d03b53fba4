"""The package as a user gets it: ``pip install .`` (not editable) into a venv with only the base
dependencies.

Importing ``otel_llm`` and loading its distro and configurator pulls in none of the tools (cli, demo, stack,
ab, dashboard) and no third-party package beyond the base dependencies; ``opentelemetry-instrument`` enriches
a tiny app's spans (a control run under the plain SDK shows they do not arrive enriched); from a directory
outside the clone, the installed ``otel-llm stack up`` starts the stack with the configs the wheel carries and
``otel-llm search`` finds the tiny app's trace there. Cost: one wheel build and two installs from pip's cache
(about 15 s) and one stack start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from otel_llm.stack.run import resolve_ports
from tests.support.poll import poll

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# What a checkout holds beside the sources; none of it belongs in the build.
NOT_SOURCES = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".*_cache", ".hypothesis", "bench", "tests")
TOOL_PACKAGES = ("otel_llm.cli", "otel_llm.demo", "otel_llm.ab", "otel_llm.dashboard", "otel_llm.stack")
# Distributions only an extra installs: the base venv must not have them.
EXTRA_DISTRIBUTIONS = ("fastapi", "langchain-core", "langgraph", "langsmith", "numpy", "scipy", "matplotlib",
                       "PyYAML", "redis", "httpx", "grafana-foundation-sdk")

# The top-level modules the base dependencies bring (OpenTelemetry, gRPC, protobuf, RE2 and their own).
BASE_MODULES = {"opentelemetry", "otel_llm", "re2", "wrapt", "packaging", "typing_extensions", "google",
                "grpc", "importlib_metadata", "zipp"}
NO_METRICS_OR_LOGS = {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}

TINY_APP = """
from opentelemetry import trace

tracer = trace.get_tracer("tiny")
with tracer.start_as_current_span("request"):
    with tracer.start_as_current_span("chat gpt-4o", attributes={
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat",
    }):
        pass
"""

IMPORT_PROBE = """
import importlib.metadata as metadata, json, sys
import otel_llm
loaded = {group: str(entry.load()) for group in ("opentelemetry_distro", "opentelemetry_configurator")
          for entry in metadata.entry_points(group=group) if entry.name == "otel_llm"}
top_level = {name.split(".")[0] for name in sys.modules}
third_party = sorted(top_level - set(sys.stdlib_module_names) - {"__main__"})
print(json.dumps({"loaded": loaded, "modules": sorted(sys.modules), "third_party": third_party}))
"""

# The control: the same app under the SDK alone, console exporter, no otel-llm configurator.
PLAIN_SDK = """
import runpy, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
runpy.run_path(sys.argv[1])
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip install .`` builds, from a copy of the clone (the build leaves nothing in it)."""
    root = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, root / "src", symlinks=True, ignore=NOT_SOURCES)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                    "-w", str(root / "dist"), str(root / "src")], check=True, timeout=600)
    (built,) = (root / "dist").glob("*.whl")
    return built


def _venv_with(requirement: str, root: Path) -> Path:
    """A fresh venv with ``requirement`` installed (dependencies from pip's cache); its bin directory."""
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--disable-pip-version-check", requirement], check=True, timeout=600)
    return python.parent


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The package alone: base dependencies only."""
    return _venv_with(str(wheel), tmp_path_factory.mktemp("installed"))


@pytest.fixture(scope="module")
def installed_tools(wheel, tmp_path_factory) -> Path:
    """The package with the ``stack`` extra, as a user installs the tools."""
    return _venv_with(f"{wheel}[stack]", tmp_path_factory.mktemp("installed-tools"))


@pytest.fixture()
def elsewhere(tmp_path) -> Path:
    """A working directory outside the clone, so nothing is found relative to it."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    (directory / "tiny.py").write_text(TINY_APP)
    return directory


def _run(args: list, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, env={**_clean_env(), **(env or {})},
                          capture_output=True, text=True, timeout=300)


def _instrumented(bin_dir: Path) -> list:
    """The tiny app under the installed launcher."""
    return [bin_dir / "opentelemetry-instrument", bin_dir / "python", "tiny.py"]


def _clean_env() -> dict[str, str]:
    """This process's environment without its venv, PYTHONPATH or OTEL_* settings."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("OTEL_", "PYTHON", "VIRTUAL_ENV", "LANGSMITH_", "LANGCHAIN_"))}


def _installed_distributions(bin_dir: Path) -> set[str]:
    listing = _run([bin_dir / "python", "-c", "import importlib.metadata as m; "
                    "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"], cwd=bin_dir)
    return {line.strip().lower() for line in listing.stdout.splitlines()}


def _spans(console_output: str) -> dict[str, dict]:
    """The console exporter's spans by name (it prints one JSON object per span)."""
    decoder, spans, index = json.JSONDecoder(), {}, 0
    while (start := console_output.find("{", index)) != -1:
        span, index = decoder.raw_decode(console_output, start)
        spans[span["name"]] = span["attributes"]
    return spans


class TestInstrumentationImport:
    def test_stack_without_its_extra_says_which(self, installed, elsewhere):
        """The base install's ``otel-llm stack up`` names the ``stack`` extra in one line, exit 2."""
        result = _run([installed / "otel-llm", "stack", "up"], elsewhere)
        assert result.returncode == 2
        assert result.stderr.startswith("otel-llm stack: needs the 'stack' extra")

    def test_venv_has_only_the_base_dependencies(self, installed):
        """The venv the other tests use holds no distribution that only an extra installs."""
        distributions = _installed_distributions(installed)
        assert "otel-llm" in distributions
        assert distributions.isdisjoint(name.lower() for name in EXTRA_DISTRIBUTIONS)

    def test_import_and_entry_points_pull_in_no_tool(self, installed, elsewhere):
        """``import otel_llm`` and the distro/configurator entry points load none of the tools' modules."""
        result = _run([installed / "python", "-c", IMPORT_PROBE], cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        probe = json.loads(result.stdout)
        assert probe["loaded"] == {
            "opentelemetry_distro": "<class 'otel_llm.configure.OtelLLMDistro'>",
            "opentelemetry_configurator": "<class 'otel_llm.configure.OtelLLMConfigurator'>",
        }
        assert [name for name in probe["modules"] if name.startswith(TOOL_PACKAGES)] == []
        assert set(probe["third_party"]) <= BASE_MODULES

    def test_launcher_enriches_a_tiny_app(self, installed, elsewhere):
        """Under ``opentelemetry-instrument`` the LLM span gets its provider and the root the roll-up."""
        env = {**NO_METRICS_OR_LOGS, "OTEL_SERVICE_NAME": "tiny", "OTEL_TRACES_EXPORTER": "console"}
        result = _run(_instrumented(installed), elsewhere, env)
        assert result.returncode == 0, result.stderr
        spans = _spans(result.stdout)
        assert spans["chat gpt-4o"]["gen_ai.provider.name"] == "openai"
        assert spans["request"]["llm.rollup.model"] == "gpt-4o"
        control = _spans(_run([installed / "python", "-c", PLAIN_SDK, "tiny.py"], elsewhere).stdout)
        assert "gen_ai.provider.name" not in control["chat gpt-4o"]
        assert not any(name.startswith("llm.") for name in control["request"])


def test_stack_up_and_search_from_outside_the_clone(installed, installed_tools, elsewhere, stack_binaries,
                                                    tmp_path):
    """The installed ``otel-llm stack up`` runs with the wheel's configs; ``search`` finds an app's trace."""
    state = tmp_path / "state"
    ports = {name: str(port) for name, port in resolve_ports({}, random_ports=True).items()}
    env = {**ports, "OTEL_LLM_STACK_STATE_DIR": str(state),
           "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s"}
    otel_llm = installed_tools / "otel-llm"
    try:
        up = _run([otel_llm, "stack", "up", "--jaeger-storage", "memory", "--json"], elsewhere, env)
        assert up.returncode == 0, up.stderr
        assert all(component["healthy"] for component in json.loads(up.stdout)["components"].values())
        collector = f"http://127.0.0.1:{ports['OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT']}"
        app_env = {**env, **NO_METRICS_OR_LOGS, "OTEL_SERVICE_NAME": "tiny-installed",
                   "OTEL_EXPORTER_OTLP_ENDPOINT": collector}
        app = _run(_instrumented(installed), elsewhere, app_env)
        assert app.returncode == 0, app.stderr

        def found() -> list[dict]:
            search = _run([otel_llm, "search", "--service", "tiny-installed", "--provider", "openai",
                           "--json"], elsewhere, env)
            return json.loads(search.stdout) if search.returncode == 0 else []

        traces = poll(found, timeout=60, message="the tiny app's trace in Jaeger via the installed search")
        assert len(traces) == 1
    finally:
        _run([otel_llm, "stack", "down"], elsewhere, env)
