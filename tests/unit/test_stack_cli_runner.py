"""otel_llm.stack.run and `otel-llm stack` without servers: ports, settings, state files, errors."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest

from otel_llm.cli import main as cli_main
from otel_llm.settings import reset_warnings
from otel_llm.stack.build import BUILD_COMMAND, StackBinaries
from otel_llm.stack.run import (
    ALL_PORTS,
    COMPONENTS_BY_NAME,
    GATEWAYS_ENV,
    LANGSMITH_API_KEY,
    REDIS,
    SPM_PROMETHEUS_URL_ENV,
    STATE_FILE,
    TOPOLOGIES,
    Stack,
    StackError,
    free_ports,
    langsmith_api_key,
    port_holder,
    port_is_free,
    resolve_ports,
)

NO_BINARIES = StackBinaries(collector=None, jaeger=None, prometheus=None, promtool=None, redis_server=None)
# Existing files, never run: for checks that must fail before any process starts.
ANY_BINARIES = StackBinaries(*(Path(sys.executable),) * 5)


def _own_argv0() -> str:
    return Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()


def _stack(tmp_path: Path, **kwargs) -> Stack:
    return Stack.create(tmp_path / "state", environ={}, random_ports=True, **kwargs)


class TestGatewayTopology:
    def test_every_collector_listens_on_ports_of_its_own(self, tmp_path):
        """Each of the four collectors gets the config's port variables mapped to ports no other one uses;
        agent-1 keeps the collector's OTLP port (the stack's endpoint), gateway-1 its span-metrics port."""
        stack = _stack(tmp_path, components=TOPOLOGIES["gateway"])
        names = ("agent-1", "agent-2", "gateway-1", "gateway-2")
        envs = {name: COMPONENTS_BY_NAME[name].env(stack) for name in names}
        listened = [value for env in envs.values() for key, value in env.items() if key.endswith("_PORT")]
        assert len(listened) == len(set(listened)) == 4 * 4 + 2
        assert (envs["agent-1"]["OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT"]
                == stack.otlp_grpc_endpoint.rsplit(":")[1])
        assert (envs["gateway-1"]["OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT"]
                == stack.env["OTEL_LLM_STACK_COLLECTOR_PROMETHEUS_PORT"])

    def test_agents_route_to_both_gateways_which_keep_separate_queues(self, tmp_path):
        """Both agents list both gateways' OTLP/gRPC listeners; each gateway has its own queue directory."""
        stack = _stack(tmp_path, components=TOPOLOGIES["gateway"])
        gateways = {name: COMPONENTS_BY_NAME[name].env(stack) for name in ("gateway-1", "gateway-2")}
        expected = ",".join(f"127.0.0.1:{env['OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT']}"
                            for env in gateways.values())
        agents = {COMPONENTS_BY_NAME[name].env(stack)[GATEWAYS_ENV] for name in ("agent-1", "agent-2")}
        assert agents == {expected}
        assert len({env["OTEL_LLM_COLLECTOR_STORAGE_DIR"] for env in gateways.values()}) == 2

    def test_an_agent_routes_only_to_the_gateways_the_stack_runs(self, tmp_path):
        """A stack of one agent and one gateway (bench_gateway_topology's 1+1) sends to that gateway alone."""
        stack = _stack(tmp_path, components=("jaeger", "gateway-1", "agent-1"))
        gateway = COMPONENTS_BY_NAME["gateway-1"].env(stack)["OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT"]
        assert COMPONENTS_BY_NAME["agent-1"].env(stack)[GATEWAYS_ENV] == f"127.0.0.1:{gateway}"

    def test_the_cli_starts_the_chosen_topology(self, tmp_path, monkeypatch):
        """`stack up --topology gateway` records the gateway topology's components (here: no binaries)."""
        monkeypatch.setattr("otel_llm.stack.run.find_binaries", lambda: NO_BINARIES)
        state = tmp_path / "state"
        assert cli_main(["stack", "--state-dir", str(state), "up", "--topology", "gateway"]) != 0
        assert json.loads((state / STATE_FILE).read_text())["components"] == list(TOPOLOGIES["gateway"])


class TestPorts:
    def test_free_ports_are_distinct_and_bindable(self):
        """free_ports gives distinct ports a server can listen on."""
        ports = free_ports(5)
        assert len(set(ports)) == 5
        assert all(port_is_free(port) for port in ports)

    def test_a_listening_port_is_taken_and_its_holder_is_named(self):
        """A port with a listener is not free, and the holder is this process."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            assert not port_is_free(port)
            assert port_holder(port) == f"pid {os.getpid()} ({_own_argv0()})"

    def test_ports_come_from_env_vars_with_defaults(self):
        """A set port variable wins; unset ones take the documented default."""
        ports = resolve_ports({REDIS.env_var: "7001"})
        assert ports[REDIS.env_var] == 7001
        assert ports["OTEL_LLM_STACK_COLLECTOR_OTLP_GRPC_PORT"] == 4317

    def test_a_bad_port_variable_warns_once_and_defaults(self, caplog):
        """An out-of-range port warns naming the variable, then uses the default."""
        reset_warnings()
        with caplog.at_level(logging.WARNING):
            ports = resolve_ports({REDIS.env_var: "70000"})
            resolve_ports({REDIS.env_var: "70000"})
        assert ports[REDIS.env_var] == REDIS.default
        warnings = [record.getMessage() for record in caplog.records if REDIS.env_var in record.getMessage()]
        assert len(warnings) == 1

    def test_random_ports_cover_every_port_variable_without_repeats(self):
        """random_ports gives each of the stack's ports its own free port."""
        ports = resolve_ports({}, random_ports=True)
        assert set(ports) == {spec.env_var for spec in ALL_PORTS}
        assert len(set(ports.values())) == len(ALL_PORTS)


class TestStackSettings:
    def test_data_dirs_live_in_the_state_dir(self, tmp_path):
        """The collector queue, badger and Prometheus URL are derived from the state dir and ports."""
        stack = _stack(tmp_path)
        assert stack.env["OTEL_LLM_COLLECTOR_STORAGE_DIR"].startswith(str(stack.state_dir))
        assert stack.env["OTEL_LLM_STACK_JAEGER_BADGER_DIR"].startswith(str(stack.state_dir))
        assert stack.env[SPM_PROMETHEUS_URL_ENV] == stack.prometheus_url

    def test_collector_settings_come_from_the_callers_environment(self, tmp_path):
        """The intervals the collector config reads are taken from the environment and recorded."""
        settings = {"OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "5s",
                    "OTEL_LLM_COLLECTOR_SERIES_EXPIRATION": "30m"}
        stack = Stack.create(tmp_path, environ=settings, random_ports=True)
        assert {name: stack.env[name] for name in settings} == settings

    def test_invalid_arguments_are_rejected_naming_the_parameter(self, tmp_path):
        """Unknown components, storages and missing port variables raise ValueError."""
        with pytest.raises(ValueError, match="components"):
            _stack(tmp_path, components=("zipkin",))
        with pytest.raises(ValueError, match="jaeger_storage"):
            _stack(tmp_path, jaeger_storage="cassandra")
        with pytest.raises(ValueError, match="OTEL_LLM_STACK_REDIS_PORT"):
            Stack(tmp_path, {})

    def test_the_api_key_is_never_written_to_the_state_file(self, tmp_path):
        """stack.json keeps ports and settings but not LANGSMITH_API_KEY; load takes the key from the env."""
        stack = _stack(tmp_path, overrides={"LANGSMITH_API_KEY": "secret-key", "LANGSMITH_PROJECT": "p"},
                       binaries=NO_BINARIES)
        with pytest.raises(StackError):
            stack.up()
        recorded = (stack.state_dir / STATE_FILE).read_text()
        assert "secret-key" not in recorded
        loaded = Stack.load(stack.state_dir, environ={"LANGSMITH_API_KEY": "from-env"})
        assert loaded.env["LANGSMITH_API_KEY"] == "from-env"
        assert loaded.env["LANGSMITH_PROJECT"] == "p"
        assert loaded.endpoints() == stack.endpoints()


SECRET = "lsv2_pt_0123456789abcdef"
# (key, what the error must say): each character the collector cannot carry in the key.
UNUSABLE_KEYS = [
    (f'{SECRET}"', "double quote"),
    (f"{SECRET}\\", "backslash"),
    (f"{SECRET}${{env:HOME}}", "dollar sign"),
    (f"{SECRET} {SECRET}", "whitespace"),
    (f"{SECRET}\x00", "control or non-ASCII"),
    (f"{SECRET}\u00e9", "control or non-ASCII"),
]


class TestLangSmithKey:
    def test_the_key_is_stripped_and_a_blank_key_turns_export_off(self):
        """Surrounding whitespace goes; a whitespace-only key becomes '' (the collector's "no key")."""
        assert langsmith_api_key(f"  {SECRET}\n") == SECRET
        assert langsmith_api_key(" \t\n") == ""

    def test_every_printable_character_the_collector_carries_is_accepted(self):
        """Punctuation other than ", \\ and $ is kept as is (the collector posts such a key verbatim)."""
        key = SECRET + "!#%&'()*+,-./:;<=>?@[]^_`{|}~"
        assert langsmith_api_key(key) == key

    @pytest.mark.parametrize(("key", "problem"), UNUSABLE_KEYS, ids=[p for _, p in UNUSABLE_KEYS])
    def test_an_unusable_key_is_refused_naming_the_problem_not_the_key(self, key, problem):
        """StackError names the variable and the problem; no part of the key is in the message."""
        with pytest.raises(StackError) as raised:
            langsmith_api_key(key)
        message = str(raised.value)
        assert LANGSMITH_API_KEY in message and problem in message
        assert SECRET not in message and SECRET[:8] not in message

    def test_components_and_status_see_the_same_stripped_key(self, tmp_path, monkeypatch):
        """Whitespace-only key: status says export off and the components' environment has ''; a padded key
        reaches them stripped."""
        monkeypatch.setenv(LANGSMITH_API_KEY, "   ")
        blank = Stack.create(tmp_path, random_ports=True)
        assert blank.status()["langsmith_export"] is False
        assert blank.process_env()[LANGSMITH_API_KEY] == ""
        monkeypatch.setenv(LANGSMITH_API_KEY, f" {SECRET} ")
        padded = Stack.create(tmp_path, random_ports=True)
        assert padded.status()["langsmith_export"] is True
        assert padded.process_env()[LANGSMITH_API_KEY] == SECRET

    def test_a_stack_without_a_key_never_passes_on_the_callers_key(self, tmp_path, monkeypatch):
        """A stack created from an environment without the key runs its collector with '' even when this
        process has one, so status (export off) is what the collector does."""
        monkeypatch.setenv(LANGSMITH_API_KEY, SECRET)
        stack = Stack.create(tmp_path, environ={}, random_ports=True)
        assert stack.status()["langsmith_export"] is False
        assert stack.process_env()[LANGSMITH_API_KEY] == ""

    def test_up_with_an_unusable_key_exits_1_without_showing_it(self, tmp_path, capsys, monkeypatch):
        """`otel-llm stack up` refuses the key before anything starts; stderr names the variable, not the key.
        """
        monkeypatch.setenv(LANGSMITH_API_KEY, f'{SECRET}"')
        code = cli_main(["stack", "--state-dir", str(tmp_path / "state"), "up"])
        captured = capsys.readouterr()
        assert code == 1
        assert LANGSMITH_API_KEY in captured.err and "double quote" in captured.err
        assert SECRET not in captured.err + captured.out
        assert list((tmp_path / "state").glob("*.pid")) == []


class TestLifecycleWithoutServers:
    def test_missing_binary_names_the_build_command_and_starts_nothing(self, tmp_path):
        """up with no binaries raises StackError naming `otel-llm stack build`; no pid file is written."""
        stack = _stack(tmp_path, binaries=NO_BINARIES)
        with pytest.raises(StackError, match=BUILD_COMMAND):
            stack.up()
        assert list(stack.state_dir.glob("*.pid")) == []

    def test_every_missing_binary_is_named(self, tmp_path):
        """With the collector and Jaeger unbuilt (the Debian ones present), both are named in one error."""
        present = Path(sys.executable)
        binaries = StackBinaries(collector=None, jaeger=None, prometheus=present, promtool=present,
                                 redis_server=present)
        with pytest.raises(StackError, match=r"Missing binaries: jaeger, collector\. Build them with"):
            _stack(tmp_path, binaries=binaries).up()

    def test_a_setting_the_config_cannot_take_fails_before_anything_starts(self, tmp_path):
        """A bad Prometheus scrape interval raises StackError naming the variable; no pid file is written."""
        stack = _stack(tmp_path, overrides={"OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": "soon"},
                       binaries=ANY_BINARIES)
        with pytest.raises(StackError, match="OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL"):
            stack.up()
        assert list(stack.state_dir.glob("*.pid")) == []

    def test_down_and_status_of_a_stack_never_started(self, tmp_path):
        """down is a no-op and status reports every component stopped, with endpoints."""
        stack = _stack(tmp_path)
        stack.down()
        status = stack.status()
        assert not any(component["running"] for component in status["components"].values())
        assert status["endpoints"]["redis"] == stack.redis_url

    def test_a_stale_pid_file_is_not_a_running_component(self, tmp_path):
        """A pid file naming a live process that runs another binary does not count as running."""
        stack = _stack(tmp_path)
        stack.state_dir.mkdir(parents=True)
        (stack.state_dir / "redis.pid").write_text(f"{os.getpid()}\n/usr/bin/redis-server\n")
        assert stack.pid("redis") is None
        (stack.state_dir / "redis.pid").write_text(f"{os.getpid()}\n{_own_argv0()}\n")
        assert stack.pid("redis") == os.getpid()


class TestCli:
    def test_status_json_of_an_empty_state_dir_exits_3(self, tmp_path, capsys):
        """`otel-llm stack status --json` prints the endpoints and exits 3 when nothing runs."""
        code = cli_main(["stack", "--state-dir", str(tmp_path), "status", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 3
        assert set(report["endpoints"]) >= {"otlp_grpc", "otlp_http", "jaeger_query", "prometheus", "redis"}

    def test_up_without_binaries_exits_1_naming_the_build_command(self, tmp_path, capsys, monkeypatch):
        """`otel-llm stack up` with an empty build cache fails with the build command in the message."""
        monkeypatch.setenv("OTEL_LLM_STACK_CACHE_DIR", str(tmp_path / "empty-cache"))
        for spec, port in zip(ALL_PORTS, free_ports(len(ALL_PORTS)), strict=True):
            monkeypatch.setenv(spec.env_var, str(port))
        code = cli_main(["stack", "--state-dir", str(tmp_path / "state"), "up"])
        assert code == 1
        assert BUILD_COMMAND in capsys.readouterr().err

    def test_logs_prints_each_component_log(self, tmp_path, capsys):
        """`otel-llm stack logs redis` prints the tail of the redis log."""
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "redis.log").write_text("line 1\nReady to accept connections\n")
        assert cli_main(["stack", "--state-dir", str(tmp_path), "logs", "redis", "-n", "1"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "Ready to accept connections"

    def test_status_of_stopped_components_shows_no_pid(self, tmp_path, capsys):
        """A stopped component's status line has no `pid=None`."""
        cli_main(["stack", "--state-dir", str(tmp_path), "status"])
        out = capsys.readouterr().out
        assert "stopped" in out and "pid=None" not in out


OTEL_LLM = str(Path(sys.executable).with_name("otel-llm"))


class TestCommandLine:
    def test_a_reader_closing_the_pipe_ends_status_quietly(self, tmp_path):
        """`otel-llm stack status | head` whose reader is gone: no traceback, exit 141 (as for SIGPIPE)."""
        import subprocess

        process = subprocess.Popen(
            [OTEL_LLM, "stack", "--state-dir", str(tmp_path), "status"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        process.stdout.close()  # before the command has written anything
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 141 and stderr == b""

    def test_logs_follow_prints_appended_lines_until_interrupted(self, tmp_path):
        """`stack logs -f` prints the tail, then each line appended later prefixed with its component, and
        ends on Ctrl-C (SIGINT) with exit 0 and no traceback."""
        import signal
        import subprocess

        from tests.support.poll import poll

        logs = tmp_path / "logs"
        logs.mkdir()
        (logs / "redis.log").write_text("old line\n")
        with open(tmp_path / "out.txt", "w") as out:
            process = subprocess.Popen(
                [OTEL_LLM, "stack", "--state-dir", str(tmp_path), "logs", "-f"],
                stdout=out,
                stderr=subprocess.PIPE,
            )
        try:
            poll(lambda: "old line" in (tmp_path / "out.txt").read_text(), timeout=30)
            with open(logs / "redis.log", "a") as log:
                log.write("new line\npartial")
            (logs / "jaeger.log").write_text("jaeger started\n")
            poll(lambda: "jaeger | jaeger started" in (tmp_path / "out.txt").read_text(), timeout=30)
        finally:
            process.send_signal(signal.SIGINT)
            stderr = process.stderr.read()
        assert process.wait(timeout=30) == 0 and stderr == b""
        followed = (tmp_path / "out.txt").read_text().split("<==")[-1]
        assert "redis | new line" in followed and "partial" not in followed
