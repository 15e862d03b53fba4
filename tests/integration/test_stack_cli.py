"""``otel-llm stack up|status|down`` as a user runs it: a subprocess on a temp state dir and random ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from otel_llm.stack.run import ALL_PORTS, COLLECTOR_OTLP_GRPC, REDIS, free_ports, redis_ping
from otel_llm.stack.variables import NEW_NAMES, RENAMED
from tests.support.poll import poll

CLI = str(Path(sys.executable).parent / "otel-llm")
CLI_TIMEOUT_SECONDS = 300


def _environment(state_dir: Path, **extra: str) -> dict[str, str]:
    ports = free_ports(len(ALL_PORTS))
    env = {**os.environ, "OTEL_LLM_STACK_STATE_DIR": str(state_dir), "LANGSMITH_API_KEY": "", **extra}
    env.update({spec.env_var: str(port) for spec, port in zip(ALL_PORTS, ports, strict=True)})
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "stack", *args], env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_SECONDS)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture()
def cli_env(stack_binaries, tmp_path):
    env = _environment(tmp_path / "state")
    yield env
    _run(env, "down")


def test_up_is_idempotent_status_reports_endpoints_and_down_stops_everything(cli_env):
    """up twice keeps one stack; status --json lists healthy endpoints; down leaves no process, twice."""
    first = _run(cli_env, "up", "--jaeger-storage", "memory", "--json")
    assert first.returncode == 0, first.stderr
    pids = {name: c["pid"] for name, c in json.loads(first.stdout)["components"].items()}
    assert set(pids) == {"redis", "prometheus", "jaeger", "collector"}

    second = _run(cli_env, "up", "--json")
    assert second.returncode == 0, second.stderr
    assert {name: c["pid"] for name, c in json.loads(second.stdout)["components"].items()} == pids

    status = _run(cli_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert all(component["healthy"] for component in report["components"].values())
    grpc_port = cli_env["OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT"]
    assert report["endpoints"]["otlp_grpc"] == f"127.0.0.1:{grpc_port}"
    assert report["endpoints"]["prometheus"] == f"http://127.0.0.1:{cli_env['OTEL_LLM_STACK_PROMETHEUS_PORT']}"
    assert redis_ping(int(cli_env["OTEL_LLM_STACK_REDIS_PORT"]))

    assert _run(cli_env, "down").returncode == 0
    assert not any(_alive(pid) for pid in pids.values())
    stopped = _run(cli_env, "status", "--json")
    assert stopped.returncode == 3
    assert not any(c["running"] for c in json.loads(stopped.stdout)["components"].values())
    assert _run(cli_env, "down").returncode == 0


def test_the_old_variable_names_still_start_and_stop_the_stack(stack_binaries, tmp_path):
    """With the ports and the state dir under their old names only, `up` listens where they say and warns once
    per old name, naming the new one; `down` finds the same stack."""
    new_names = _environment(tmp_path / "state")
    env = {RENAMED.get(name, name): value for name, value in new_names.items()}
    used = sorted(RENAMED[name] for name in new_names if name in RENAMED)
    assert len(used) == len(ALL_PORTS) + 1 and not set(env) & set(RENAMED)
    try:
        result = _run(env, "up", "--jaeger-storage", "memory", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["state_dir"] == str((tmp_path / "state").resolve())
        assert all(component["healthy"] for component in report["components"].values())
        assert report["endpoints"]["otlp_grpc"] == f"127.0.0.1:{new_names[COLLECTOR_OTLP_GRPC.env_var]}"
        assert redis_ping(int(new_names[REDIS.env_var]))
        for old in used:
            [warning] = [line for line in result.stderr.splitlines() if f"{old} is deprecated" in line]
            assert NEW_NAMES[old] in warning
    finally:
        assert _run(env, "down").returncode == 0
    assert not redis_ping(int(new_names[REDIS.env_var]))


def test_up_restarts_only_a_component_that_died(cli_env):
    """After Redis is killed, status exits 3 and `up` starts a new Redis, leaving the others as they were."""
    before = json.loads(_run(cli_env, "up", "--jaeger-storage", "memory", "--json").stdout)["components"]
    os.kill(before["redis"]["pid"], signal.SIGKILL)
    assert poll(lambda: _run(cli_env, "status").returncode == 3, timeout=30, message="status: Redis gone")

    after = _run(cli_env, "up", "--json")
    assert after.returncode == 0, after.stderr
    components = json.loads(after.stdout)["components"]
    assert components["redis"]["pid"] != before["redis"]["pid"]
    assert {name: components[name]["pid"] for name in ("prometheus", "jaeger", "collector")} == {
        name: before[name]["pid"] for name in ("prometheus", "jaeger", "collector")}
    assert redis_ping(int(cli_env["OTEL_LLM_STACK_REDIS_PORT"]))


def test_two_concurrent_ups_make_one_stack(cli_env):
    """Two `up` started at once on one state dir both succeed and report the same processes."""
    command = [CLI, "stack", "up", "--jaeger-storage", "memory", "--json"]
    runs = [subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=CLI_TIMEOUT_SECONDS) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    pids = [{name: c["pid"] for name, c in json.loads(out)["components"].items()} for out, _ in outputs]
    assert pids[0] == pids[1]


def test_up_names_the_taken_port_its_variable_and_holder(cli_env):
    """A port in use fails `up` before anything starts, naming the port, its env var and its holder."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(cli_env["OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT"])))
        squatter.listen()
        result = _run(cli_env, "up")
    assert result.returncode == 1
    assert f"Port {cli_env['OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT']}" in result.stderr
    assert "OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert not redis_ping(int(cli_env["OTEL_LLM_STACK_REDIS_PORT"]))  # nothing was left running


def test_up_without_built_binaries_names_the_build_command(cli_env, tmp_path):
    """With an empty build cache, `up` fails naming `otel-llm stack build` and starts nothing."""
    env = {**cli_env, "OTEL_LLM_STACK_CACHE_DIR": str(tmp_path / "empty-cache")}
    result = _run(env, "up")
    assert result.returncode == 1
    assert "otel-llm stack build" in result.stderr
    assert not redis_ping(int(env["OTEL_LLM_STACK_REDIS_PORT"]))


def test_a_jaeger_binary_of_the_users_runs_with_the_stacks_config(stack_binaries, tmp_path):
    """OTEL_LLM_STACK_JAEGER_BINARY: the stack runs that binary (a copy of the built one, at another path) as
    its Jaeger with the stack's config and ports, reports it healthy, and records the choice."""
    import shutil

    from otel_llm.stack.run import JAEGER_BINARY_ENV, STATE_FILE, Stack

    own = tmp_path / "official" / "jaeger"
    own.parent.mkdir()
    shutil.copy2(stack_binaries.jaeger, own)
    stack = Stack.create(tmp_path / "state", {JAEGER_BINARY_ENV: str(own)}, random_ports=True,
                         components=("jaeger",), jaeger_storage="memory")
    try:
        stack.up()
        assert os.readlink(f"/proc/{stack.pid('jaeger')}/exe") == str(own)
        assert stack.healthy("jaeger")
        recorded = json.loads((stack.state_dir / STATE_FILE).read_text())["env"]
        assert recorded[JAEGER_BINARY_ENV] == str(own)
    finally:
        stack.down()


def test_a_jaeger_binary_that_is_not_executable_is_named_before_anything_starts(tmp_path):
    """A wrong OTEL_LLM_STACK_JAEGER_BINARY exits 1 naming the variable; nothing is started."""
    env = _environment(tmp_path / "state", OTEL_LLM_STACK_JAEGER_BINARY=str(tmp_path / "nope"))
    result = _run(env, "up")
    assert result.returncode == 1 and "OTEL_LLM_STACK_JAEGER_BINARY" in result.stderr
    assert list((tmp_path / "state").glob("*.pid")) == []
