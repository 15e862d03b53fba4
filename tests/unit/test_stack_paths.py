"""otel_llm.stack.paths: the stack's files are package data (in a clone, symlinks to the top-level
directories), ``$OTEL_LLM_STACK_FILES`` points elsewhere, and a missing file is named with where it was
looked for and the variable to set, by ``otel-llm stack up`` as one line. The installed wheel is tested in
tests/integration/test_installed_package.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_llm.stack import paths

REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from otel_llm.cli import main; sys.exit(main())"


class TestStackFilesRoot:
    def test_clone_package_data_is_the_top_level_directories(self, monkeypatch):
        """In a clone the package's files/ are the top-level collector/, jaeger/, prometheus/, grafana/."""
        monkeypatch.delenv(paths.STACK_FILES_ENV, raising=False)
        assert paths.stack_files_root() == paths.PACKAGED_FILES
        for name in ("collector", "jaeger", "prometheus", "grafana"):
            assert (paths.PACKAGED_FILES / name).resolve() == REPO / name
        assert (paths.COLLECTOR_DIR, paths.JAEGER_DIR, paths.PROMETHEUS_DIR) == (
            REPO / "collector", REPO / "jaeger", REPO / "prometheus")

    def test_variable_points_elsewhere(self, monkeypatch, tmp_path):
        """``$OTEL_LLM_STACK_FILES`` wins over the package's own files; blank means unset."""
        monkeypatch.setenv(paths.STACK_FILES_ENV, str(tmp_path))
        assert paths.stack_files_root() == tmp_path.resolve()
        monkeypatch.setenv(paths.STACK_FILES_ENV, "  ")
        assert paths.stack_files_root() == paths.PACKAGED_FILES

    def test_every_required_file_is_present(self):
        """The files building and running the stack need are all in the package's root."""
        paths.require_stack_files()


class TestMissingFiles:
    def test_message_names_files_directory_and_variable(self, tmp_path):
        """Each missing file is named relative to the directory searched, with the variable that fixes it."""
        (tmp_path / "collector").mkdir()
        (tmp_path / "collector" / "config.yaml").write_text("")
        with pytest.raises(paths.StackFilesNotFound) as raised:
            paths.require_stack_files(tmp_path)
        message = str(raised.value)
        assert "collector/builder-config.yaml" in message and "jaeger/module/go.sum" in message
        assert "collector/config.yaml," not in message
        assert str(tmp_path) in message and paths.STACK_FILES_ENV in message

    def test_stack_up_says_so_in_one_line(self, tmp_path):
        """``otel-llm stack up`` with the variable at an empty directory exits 1 with the message only."""
        empty = tmp_path / "empty"
        empty.mkdir()
        command = [sys.executable, "-c", CLI, "stack", "--state-dir", str(tmp_path / "state"), "up"]
        result = subprocess.run(command, env={"PATH": "/usr/bin:/bin", paths.STACK_FILES_ENV: str(empty)},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.startswith("otel-llm stack up: the stack's files are missing: looked for ")
        assert f"in {empty} (${paths.STACK_FILES_ENV})" in result.stderr
        assert "Traceback" not in result.stderr
