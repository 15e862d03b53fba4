"""The stack's and the collector configs' own prefixes: the rename table, old names read with one warning, the
rename script."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from otel_llm.settings import SETTING_VARIABLES, reset_warnings
from otel_llm.stack.variables import (
    COLLECTOR_PREFIX,
    RENAMED,
    STACK_PREFIX,
    lookup,
    main,
    old_names_in,
    rename_text,
    with_new_names,
)

NEW = STACK_PREFIX + "REDIS_PORT"
OLD = RENAMED[NEW]


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
