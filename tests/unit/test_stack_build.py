"""otel_llm.stack.build: the build cache (key, reuse, atomic install, one build under concurrency) and the
lookup of binaries, exercised with small shell-script "builds" instead of Go (the real builds run in CI via
`otel-llm stack build`; tests/integration/test_configs.py uses their output)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from otel_llm.stack import build, paths


def _script_builder(calls: list[Path], content: str = "#!/bin/sh\necho built\n"):
    """A build that writes an executable into the build directory, recording the call."""

    def build_into(work: Path, name: str = "tool") -> None:
        calls.append(work)
        binary = work / name
        binary.write_text(content)
        binary.chmod(0o755)

    return build_into


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


class TestBuildCached:
    def test_builds_once_then_reuses(self, cache):
        """A second call finds the executable and does not build again."""
        calls: list[Path] = []
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"
        assert build.build_cached(target, _script_builder(calls), log=lambda _: None) == target
        assert build.build_cached(target, _script_builder(calls), log=lambda _: None) == target
        assert len(calls) == 1 and target.read_text().endswith("echo built\n")

    def test_build_directory_is_gone_after_install(self, cache):
        """Only the final directory remains in bin/: the temporary build directory is removed."""
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"
        build.build_cached(target, _script_builder([]), log=lambda _: None)
        entries = sorted(path.name for path in paths.binaries_dir().iterdir())
        assert entries == [".tool-1.0-abc.lock", "tool-1.0-abc"]

    def test_failed_build_leaves_no_binary(self, cache):
        """A build that raises leaves nothing at the target, and the next call builds."""
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"

        def failing(work: Path) -> None:
            (work / "tool").write_text("half")
            raise build.StackBuildError("compiler exploded")

        with pytest.raises(build.StackBuildError, match="compiler exploded"):
            build.build_cached(target, failing, log=lambda _: None)
        assert not target.exists()
        calls: list[Path] = []
        build.build_cached(target, _script_builder(calls), log=lambda _: None)
        assert len(calls) == 1

    def test_build_without_output_is_an_error(self, cache):
        """A build that finishes without leaving the executable raises, naming the target."""
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"
        with pytest.raises(build.StackBuildError, match="left no executable"):
            build.build_cached(target, lambda work: None, log=lambda _: None)

    def test_concurrent_calls_build_once(self, cache):
        """Threads racing for one target: one builds, the others wait on the lock and reuse its result."""
        calls: list[Path] = []
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"
        started = threading.Barrier(4)
        results: list[Path] = []

        def run() -> None:
            started.wait()
            results.append(build.build_cached(target, _script_builder(calls), log=lambda _: None))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [target] * 4 and len(calls) == 1


class TestCacheKeys:
    def test_hash_changes_with_content(self, tmp_path):
        """The cache key follows the manifest's content, so an edited manifest builds a new binary."""
        manifest = tmp_path / "builder-config.yaml"
        manifest.write_text("dist: {name: a}\n")
        first = build.content_hash(manifest)
        manifest.write_text("dist: {name: b}\n")
        assert build.content_hash(manifest) != first and len(first) == build.HASH_LENGTH

    def test_paths_live_in_the_cache_keyed_by_version_and_hash(self, cache):
        """Collector and Jaeger paths are <cache>/bin/<name>-<version>-<hash>/<name>."""
        collector = build.collector_path()
        assert collector.parent.parent == cache / "bin"
        assert collector.parent.name == (f"{paths.COLLECTOR_NAME}-{paths.COLLECTOR_VERSION}-"
                                         f"{build.content_hash(paths.COLLECTOR_MANIFEST)}")
        assert build.jaeger_path().parent.name.startswith(f"{paths.JAEGER_NAME}-{paths.JAEGER_VERSION}-")

    def test_blank_cache_dir_variable_means_the_default(self, monkeypatch):
        """An empty OTEL_LLM_CACHE_DIR falls back to ~/.cache/otel-llm."""
        monkeypatch.setenv(paths.CACHE_DIR_ENV, "  ")
        assert paths.cache_dir() == paths.DEFAULT_CACHE_DIR.expanduser()


class TestFindBinaries:
    def test_missing_go_builds_are_none(self, cache):
        """With an empty cache the collector and Jaeger are reported missing, nothing is built."""
        found = build.find_binaries()
        assert found.collector is None and found.jaeger is None
        assert {"collector", "jaeger"} <= set(found.missing())
        assert not (cache / "bin").exists()

    def test_built_binary_is_found(self, cache):
        """A binary at the collector's cache path is what find_binaries reports."""
        target = build.collector_path()
        write_collector = _script_builder([])
        build.build_cached(target, lambda work: write_collector(work, paths.COLLECTOR_NAME), log=print)
        assert build.find_binaries().collector == target


class TestPinnedVersions:
    def test_jaeger_version_is_the_one_the_module_requires(self):
        """The version in the cache key is the one jaeger/module/go.mod builds."""
        go_mod = (paths.JAEGER_BUILD_MODULE / "go.mod").read_text()
        required = re.findall(r"^\s*github\.com/jaegertracing/jaeger (v\S+)", go_mod, flags=re.MULTILINE)
        assert required == [f"v{paths.JAEGER_VERSION}"]

    def test_collector_version_is_the_manifests(self):
        """The version in the cache key is the manifest's dist.version."""
        import yaml

        manifest = yaml.safe_load(paths.COLLECTOR_MANIFEST.read_text())
        assert str(manifest["dist"]["version"]) == paths.COLLECTOR_VERSION
