"""The stack's and the collector configs' own prefixes: the rename table, old names read with one warning, the
rename script."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_llm.settings import SETTING_VARIABLES, reset_warnings
from otel_llm.stack import paths
from otel_llm.stack.run import COMPONENTS, REDIS, STATE_FILE, Stack, default_state_dir
from otel_llm.stack.variables import (
    COLLECTOR_PREFIX,
    RENAMED,
    STACK_PREFIX,
    lookup,
    main,
    old_names_in,
    rename_text,
    text_files,
    with_new_names,
)

NEW = STACK_PREFIX + "REDIS_PORT"
OLD = RENAMED[NEW]
DOCS = Path(__file__).resolve().parents[2] / "docs"
# What the stack runs: the configs shipped with the package (in a clone, the top-level directories).
STACK_CONFIG_DIRS = (paths.COLLECTOR_DIR, paths.JAEGER_DIR, paths.PROMETHEUS_DIR, paths.DASHBOARD.parent)


@pytest.fixture
def warnings(caplog):
    """The warning lines logged during the test, after forgetting earlier ones."""
    reset_warnings()
    caplog.set_level(logging.WARNING)
    yield lambda: [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    reset_warnings()


class TestTable:
    def test_each_new_name_is_its_old_name_with_a_prefix_of_its_own(self):
        """A renamed variable moves from OTEL_LLM_ to OTEL_LLM_STACK_ or OTEL_LLM_COLLECTOR_, no more."""
        for new, old in RENAMED.items():
            prefix = STACK_PREFIX if new.startswith(STACK_PREFIX) else COLLECTOR_PREFIX
            assert new.startswith(prefix) and new == prefix + old.removeprefix("OTEL_LLM_"), (new, old)

    def test_the_library_switches_keep_their_names_and_no_prefix_of_the_stack(self):
        """No Settings variable is renamed or starts like a stack or collector variable."""
        for name, _ in SETTING_VARIABLES.values():
            assert name not in RENAMED.values()
            assert not name.startswith((STACK_PREFIX, COLLECTOR_PREFIX)), name

    def test_every_port_the_launcher_opens_has_a_stack_name_from_the_table(self):
        """The runner's port variables, the gateway topology's included, are new names of the table."""
        ports = {spec.env_var for component in COMPONENTS for spec in component.ports}
        assert ports <= set(RENAMED), sorted(ports - set(RENAMED))
        assert all(port.startswith(STACK_PREFIX) for port in ports)

    def test_renaming_new_names_changes_nothing(self):
        """No new name holds an old one: running the rename twice is running it once."""
        text = "\n".join(f"${{env:{new}:-1}} `{new}` {new}=x" for new in RENAMED)
        assert rename_text(text) == text
        assert old_names_in(text) == []


class TestOldNames:
    def test_old_name_is_read_with_one_warning_naming_the_new_one(self, warnings):
        """Only the old name set: its value is used, and one warning (however often it is read) names the new
        name and says the old one goes away."""
        environ = {OLD: "6380"}
        assert lookup(NEW, environ) == "6380"
        assert with_new_names(environ) == {OLD: "6380", NEW: "6380"}
        assert lookup(NEW, environ) == "6380"
        [message] = warnings()
        assert OLD in message and NEW in message and "next release" in message

    def test_new_name_wins_and_the_old_one_is_reported_ignored(self, warnings):
        """Both set: the new name's value, one warning that the old one is ignored."""
        environ = {OLD: "6380", NEW: "6390"}
        assert lookup(NEW, environ) == "6390"
        assert with_new_names(environ)[NEW] == "6390"
        [message] = warnings()
        assert f"{OLD} is ignored" in message and NEW in message

    def test_only_the_old_names_in_use_are_warned_about(self, warnings):
        """A lookup of one variable says nothing about another old name set beside it."""
        other_new = COLLECTOR_PREFIX + "SAMPLING_WAIT"
        assert lookup(NEW, {RENAMED[other_new]: "1s"}) is None
        assert warnings() == []

    def test_names_written_by_this_package_are_renamed_silently(self, warnings):
        """``warn=False`` (a stack.json of the previous release) renames without a warning."""
        assert with_new_names({OLD: "6380"}, warn=False)[NEW] == "6380"
        assert warnings() == []


class TestRename:
    def test_whole_names_only_and_marked_blocks_left_alone(self):
        """An old name is replaced where it stands alone; longer names and old-names blocks are untouched."""
        text = (f"endpoint: 127.0.0.1:${{env:{OLD}:-6379}}\n"
                f"{OLD}_EXTRA X{OLD} `{OLD}`\n"
                "<!-- old-names:begin -->\n"
                f"| `{OLD}` | `{NEW}` |\n"
                "<!-- old-names:end -->\n"
                f"{OLD}\n")
        assert rename_text(text) == (f"endpoint: 127.0.0.1:${{env:{NEW}:-6379}}\n"
                                     f"{OLD}_EXTRA X{OLD} `{NEW}`\n"
                                     "<!-- old-names:begin -->\n"
                                     f"| `{OLD}` | `{NEW}` |\n"
                                     "<!-- old-names:end -->\n"
                                     f"{NEW}\n")

    def test_script_renames_text_files_once_and_check_then_passes(self, tmp_path, capsys):
        """``--rename`` rewrites text files (not symlinks, binaries or .git), a second run changes nothing,
        and ``--check`` fails before and passes after."""
        (tmp_path / "collector").mkdir()
        config = tmp_path / "collector" / "config.yaml"
        config.write_text(f"port: ${{env:{OLD}:-6379}}\n")
        binary = tmp_path / "data.bin"
        binary.write_bytes(b"\0" + OLD.encode())
        (tmp_path / ".git").mkdir()
        git_file = tmp_path / ".git" / "HEAD"
        git_file.write_text(OLD)
        (tmp_path / "link.yaml").symlink_to(config)

        assert main(["--check", str(tmp_path)]) == 1
        assert f"{config}: {OLD}" in capsys.readouterr().out
        assert main(["--rename", str(tmp_path)]) == 0
        assert capsys.readouterr().out == f"renamed in {config}\n"
        assert config.read_text() == f"port: ${{env:{NEW}:-6379}}\n"
        assert binary.read_bytes() == b"\0" + OLD.encode() and git_file.read_text() == OLD
        assert main(["--rename", str(tmp_path)]) == 0
        assert capsys.readouterr().out == ""
        assert main(["--check", str(tmp_path)]) == 0

    def test_module_runs_as_a_script(self, tmp_path):
        """``python -m otel_llm.stack.variables --rename PATH`` is the command re-run after merges."""
        config = tmp_path / "agent.yaml"
        config.write_text(f"{OLD}\n")
        subprocess.run([sys.executable, "-m", "otel_llm.stack.variables", "--rename", str(tmp_path)],
                       check=True, capture_output=True)
        assert config.read_text() == f"{NEW}\n"


class TestLauncher:
    def test_a_stack_created_from_old_names_uses_their_values_under_the_new_names(self, tmp_path, warnings):
        """Ports and collector settings given by their old names reach the stack, one warning each."""
        sampling = COLLECTOR_PREFIX + "SAMPLING_WAIT"
        stack = Stack.create(tmp_path, environ={OLD: "7001", RENAMED[sampling]: "5s"})
        assert stack.port(REDIS) == 7001 and stack.env[sampling] == "5s"
        assert sorted(message.split()[0] for message in warnings()) == sorted([OLD, RENAMED[sampling]])

    def test_the_new_name_wins_in_the_launcher(self, tmp_path, warnings):
        """Both names set: the stack takes the new one's port and says the old one is ignored."""
        stack = Stack.create(tmp_path, environ={OLD: "7001", NEW: "7002"})
        assert stack.port(REDIS) == 7002
        assert warnings() == [f"{OLD} is ignored because {NEW} is set; unset it (the old name goes away in "
                              "the next release)"]

    def test_the_components_get_the_new_name_for_an_old_one_in_the_callers_environment(
            self, tmp_path, monkeypatch, warnings):
        """A collector variable only the configs read (TLS) reaches the child processes under its new name."""
        new = COLLECTOR_PREFIX + "TLS_CA_FILE"
        monkeypatch.setenv(RENAMED[new], "/etc/ca.pem")
        environment = Stack.create(tmp_path, environ={}, random_ports=True).process_env()
        assert environment[new] == "/etc/ca.pem"
        assert len(warnings()) == 1

    def test_a_stack_recorded_by_the_previous_release_is_loaded_silently(self, tmp_path, warnings):
        """A stack.json written with the old names is read (ports and all) without a warning."""
        stack = Stack.create(tmp_path, environ={}, random_ports=True)
        recorded = {"env": {RENAMED.get(name, name): value for name, value in stack.env.items()},
                    "components": [component.name for component in stack.components],
                    "jaeger_storage": "badger"}
        assert OLD in recorded["env"] and NEW not in recorded["env"]
        (tmp_path / STATE_FILE).write_text(json.dumps(recorded))
        loaded = Stack.load(tmp_path, environ={})
        assert loaded is not None and loaded.port(REDIS) == stack.port(REDIS)
        assert warnings() == []

    def test_state_and_cache_directories_from_their_old_names(self, tmp_path, monkeypatch, warnings):
        """The state directory (CLI, stack) and the build cache follow their old names too."""
        state, cache = STACK_PREFIX + "STATE_DIR", STACK_PREFIX + "CACHE_DIR"
        assert default_state_dir({RENAMED[state]: str(tmp_path / "state")}) == tmp_path / "state"
        monkeypatch.setenv(RENAMED[cache], str(tmp_path / "cache"))
        assert paths.cache_dir() == tmp_path / "cache"
        assert len(warnings()) == 2


def _names_read_by_the_configs() -> set[str]:
    """Every variable a collector or Jaeger config (main or testdata) or the Prometheus template reads."""
    names = set()
    for path, text in text_files((paths.COLLECTOR_DIR, paths.JAEGER_DIR)):
        if path.suffix == ".yaml":
            names.update(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)", text))
    names.update(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", paths.PROMETHEUS_TEMPLATE.read_text()))
    return names


class TestConfigs:
    def test_no_file_the_stack_runs_refers_to_an_old_name(self):
        """Configs, testdata, READMEs and rules under collector/, jaeger/, prometheus/, grafana/ use new names
        only, so the rename cannot half-regress."""
        stale = {str(path): old_names_in(text) for path, text in text_files(STACK_CONFIG_DIRS)}
        assert {path: names for path, names in stale.items() if names} == {}

    def test_every_variable_the_configs_read_has_a_prefix_of_the_stack_and_is_documented(self):
        """Each otel-llm variable a config reads is OTEL_LLM_STACK_* or OTEL_LLM_COLLECTOR_*, and every
        variable a config reads is explained in docs/stack.md or docs/deploy.md."""
        names = _names_read_by_the_configs()
        assert {COLLECTOR_PREFIX + "SAMPLING_WAIT", STACK_PREFIX + "PROMETHEUS_SCRAPE_INTERVAL"} <= names
        own = {name for name in names if name.startswith("OTEL_LLM_")}
        assert {name for name in own if not name.startswith((STACK_PREFIX, COLLECTOR_PREFIX))} == set()
        docs = (DOCS / "stack.md").read_text() + (DOCS / "deploy.md").read_text()
        assert {name for name in names if f"`{name}`" not in docs} == set()

    def test_the_reference_page_lists_every_rename(self):
        """docs/configuration.md's table of renamed variables is the code's table, inside the block the rename
        script leaves alone."""
        text = (DOCS / "configuration.md").read_text()
        block = text[text.index("old-names:begin"):text.index("old-names:end")]
        rows = set(re.findall(r"^\| `(OTEL_LLM_\w+)` \| `(OTEL_LLM_\w+)` \|$", block, re.MULTILINE))
        assert rows == {(old, new) for new, old in RENAMED.items()}
