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


class TestHeartbeat:
    def test_a_long_build_step_says_it_is_alive(self, monkeypatch):
        """A step longer than the heartbeat logs its phase and the time so far, then done."""
        monkeypatch.setattr(build, "HEARTBEAT_SECONDS", 0.05)
        lines: list[str] = []
        build._run(["sleep", "0.3"], what="collector: ocb build", cwd=Path("/"), env={}, log=lines.append)
        beats = [line for line in lines if line.startswith("collector: ocb build: still running, ")]
        assert len(beats) >= 2 and lines[-1].startswith("collector: ocb build: done in ")

    def test_waiting_on_another_builds_lock_is_said(self, cache, monkeypatch):
        """While another build holds the target's lock, a line says so; then the waiting call reuses its
        result instead of building."""
        from tests.support.poll import poll

        monkeypatch.setattr(build, "HEARTBEAT_SECONDS", 0.05)
        monkeypatch.setattr(build, "LOCK_POLL_SECONDS", 0.01)
        target = paths.binaries_dir() / "tool-1.0-abc" / "tool"
        lines: list[str] = []
        calls: list[Path] = []
        with build._locked(target, log=lines.append):
            waiter = threading.Thread(
                target=build.build_cached, args=(target, _script_builder(calls), lines.append)
            )
            waiter.start()
            poll(lambda: any("waiting for another build of it" in line for line in lines), timeout=10)
            target.parent.mkdir()
            _script_builder([])(target.parent, "tool")  # the other build's result
        waiter.join(timeout=10)
        assert not waiter.is_alive() and calls == []
        assert any(line.startswith("tool: built by a concurrent run") for line in lines)


class TestCacheKeys:
    def test_hash_changes_with_content(self, tmp_path):
        """The cache key follows the manifest's content, so an edited manifest builds a new binary."""
        manifest = tmp_path / "builder-config.yaml"
        manifest.write_text("dist: {name: a}\n")
        first = build.content_hash(manifest)
        manifest.write_text("dist: {name: b}\n")
        assert build.content_hash(manifest) != first and len(first) == build.HASH_LENGTH

    def test_paths_live_in_the_cache_keyed_by_version_and_hash(self, cache):
        """Collector and Jaeger paths are <cache>/bin/<name>-<version>-<hash>/<name>, the collector's hash
        over the manifest and its local modules' sources."""
        collector = build.collector_path()
        assert collector.parent.parent == cache / "bin"
        sources = [source for module in build.local_module_dirs()
                   for source in build.local_module_sources(module)]
        assert collector.parent.name == (f"{paths.COLLECTOR_NAME}-{paths.COLLECTOR_VERSION}-"
                                         f"{build.content_hash(paths.COLLECTOR_MANIFEST, *sources)}")
        assert build.jaeger_path().parent.name.startswith(f"{paths.JAEGER_NAME}-{paths.JAEGER_VERSION}-")

    def test_blank_cache_dir_variable_means_the_default(self, monkeypatch):
        """An empty OTEL_LLM_STACK_CACHE_DIR falls back to ~/.cache/otel-llm."""
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


def _fake_go(directory: Path, version_output: str) -> Path:
    """A `go` on PATH whose `go version` prints ``version_output``."""
    directory.mkdir(exist_ok=True)
    go = directory / "go"
    go.write_text(f"#!/bin/sh\necho '{version_output}'\n")
    go.chmod(0o755)
    return go


@pytest.fixture()
def only_fake_go(tmp_path, monkeypatch):
    """PATH holds only tmp_path/bin and the fallback location does not exist: the fake go is the only one."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(build, "GO_FALLBACK", tmp_path / "no-go" / "go")
    return tmp_path / "bin"


class TestGoVersion:
    def test_versions_order_as_go_orders_them(self):
        """Language version < beta < rc < release < patch release; minor versions compare as numbers."""
        order = ["1.9.5", "1.25.0", "1.26", "1.26beta1", "1.26rc1", "1.26rc2", "1.26.0", "go1.26.1", "1.27"]
        assert sorted(order, key=build.go_version_key) == order

    def test_required_go_is_the_newer_of_ocb_and_the_jaeger_module(self):
        """go 1.26 from jaeger/module/go.mod beats ocb's 1.25.0."""
        assert build.jaeger_module_go() == "1.26"
        assert build.required_go() == "1.26"

    @pytest.mark.parametrize("output", ["go version go1.26.0 linux/amd64", "go version go1.27rc1 linux/arm64",
                                        "go version devel go1.27-3f2b1c0 Tue Jan 6 linux/amd64"])
    def test_a_new_enough_go_is_used(self, only_fake_go, output):
        """A go at or above the requirement, release or not, is the one the build runs."""
        go = _fake_go(only_fake_go, output)
        assert build._go() == go

    def test_an_old_go_fails_naming_the_minimum_and_what_was_found(self, only_fake_go):
        """Go 1.25 cannot build the Jaeger module: the error names 1.26, what was found, where to get Go."""
        go = _fake_go(only_fake_go, "go version go1.25.3 linux/amd64")
        with pytest.raises(build.StackBuildError) as raised:
            build._go()
        message = str(raised.value)
        assert "needs Go >= 1.26" in message and f"{go} is go1.25.3" in message
        assert build.GO_DOWNLOAD_URL in message

    def test_unreadable_go_version_output_is_an_error(self, only_fake_go):
        """`go version` printing no version stops the build with what it printed."""
        _fake_go(only_fake_go, "command not understood")
        with pytest.raises(build.StackBuildError, match="names no Go version: 'command not understood'"):
            build._go()

    def test_no_go_at_all_names_the_minimum(self, only_fake_go):
        """Without any go the error says which version to install."""
        with pytest.raises(build.StackBuildError, match=r"needs Go >= 1\.26: no `go` on PATH"):
            build._go()

    def test_an_old_go_stops_a_build_before_anything_runs(self, only_fake_go, cache):
        """ensure_builder with Go 1.24 fails at the check: no go install is attempted, no builder cached."""
        _fake_go(only_fake_go, "go version go1.24.6 linux/amd64")
        with pytest.raises(build.StackBuildError, match="is go1.24.6"):
            build.ensure_builder(log=lambda _: None)
        assert not build.builder_path().exists()


class TestLocalModules:
    def test_manifest_local_module_is_the_processor(self):
        """The manifest's one local module is collector/llmrollupprocessor, resolved to an absolute path."""
        assert build.local_module_dirs() == [paths.COLLECTOR_DIR / "llmrollupprocessor"]

    def test_sources_are_the_build_inputs_only(self):
        """go.mod, go.sum, non-test Go files and the embedded rules.json; not tests or testdata."""
        names = {path.name for path in build.local_module_sources(paths.COLLECTOR_DIR / "llmrollupprocessor")}
        assert {"go.mod", "go.sum", "processor.go", "rules.json"} <= names
        assert not {name for name in names if name.endswith("_test.go") or name == "normalize_corpus.json"}

    def test_an_edited_module_source_changes_the_collector_key(self, tmp_path, monkeypatch, cache):
        """Editing a Go file of a local module gives the collector a new cache path (so it is rebuilt)."""
        module = tmp_path / "collector" / "mod"
        module.mkdir(parents=True)
        manifest = tmp_path / "collector" / "builder-config.yaml"
        manifest.write_text("processors:\n  - gomod: example.com/mod v0.0.0\n    path: ./mod\n")
        for name in ("go.mod", "go.sum", "a.go"):
            (module / name).write_text(name)
        monkeypatch.setattr(paths, "COLLECTOR_DIR", manifest.parent)
        monkeypatch.setattr(paths, "COLLECTOR_MANIFEST", manifest)
        before = build.collector_path()
        (module / "a_test.go").write_text("test")
        assert build.collector_path() == before
        (module / "a.go").write_text("changed")
        assert build.collector_path() != before
