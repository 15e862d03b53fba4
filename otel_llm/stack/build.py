"""The one build script of the stack: ``otel-llm stack build`` and ``python -m otel_llm.stack.build``.

Builds the collector with the official builder (ocb) from ``collector/builder-config.yaml`` and Jaeger v2
with ``go install tool`` from the wrapper module in ``jaeger/module`` (its committed go.sum is the checksum
source, no sum database needed), and installs ``prometheus`` and ``redis-server`` from Debian when missing.

Built binaries are cached outside the clone under ``<cache>/bin/<name>-<version>-<hash>/<name>``, the hash
taken over the files they are built from, so a second run rebuilds nothing and an edited manifest builds a new
binary. Each build runs in a temporary directory under the cache, holds a per-target file lock and ends with
an atomic rename, so two concurrent runs neither corrupt the cache nor build the same thing twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from otel_llm.stack import paths

BUILD_COMMAND = "otel-llm stack build"
DEBIAN_PACKAGES = ("prometheus", "redis-server")
DEBIAN_BINARY_DIR = Path("/usr/bin")
GO_FALLBACK = Path("/usr/local/go/bin/go")
# The `go` line of go.opentelemetry.io/collector/cmd/builder@v0.159.0's go.mod (ocb, and the collector it
# generates, say `go 1.25`); the Jaeger wrapper module states its own (jaeger/module/go.mod).
BUILDER_GO_MINIMUM = "1.25.0"
GO_DOWNLOAD_URL = "https://go.dev/dl/"
_GO_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+)|(beta|rc)(\d+))?")
_GO_STAGES = {None: 0, "beta": 1, "rc": 2}  # language version ("1.26") < beta < rc < release ("1.26.0")
HASH_LENGTH = 12
KUBERNETES_CHECKER = "otel-llm-k8s-check"  # collector/kubernetes/validate
# A cold Go build takes minutes: a line at least this often says it is alive, the phase and the time so far.
HEARTBEAT_SECONDS = 30.0
LOCK_POLL_SECONDS = 1.0

Log = Callable[[str], None]


class StackBuildError(RuntimeError):
    """A stack binary could not be built or installed; the message names it and the command that failed."""


@dataclasses.dataclass(frozen=True)
class StackBinaries:
    """Paths of the executables; from ``find_binaries`` a field is None when that binary is missing."""

    collector: Path | None
    jaeger: Path | None
    prometheus: Path | None
    promtool: Path | None
    redis_server: Path | None

    def missing(self) -> list[str]:
        """Names of the fields that are None."""
        return [field.name for field in dataclasses.fields(self) if getattr(self, field.name) is None]


def _log_to_stderr(message: str) -> None:
    print(f"[otel-llm stack build] {message}", file=sys.stderr, flush=True)


def content_hash(*files: Path) -> str:
    """A short sha256 over the names and contents of ``files``: the cache key of what is built from them."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:HASH_LENGTH]


def builder_path() -> Path:
    return paths.binaries_dir() / f"builder-{paths.BUILDER_VERSION}" / "builder"


def _manifest_entries(manifest: dict) -> Iterator[dict]:
    """Every component entry of an ocb manifest (receivers, processors, ..., providers)."""
    for section in manifest.values():
        if isinstance(section, list):
            yield from (entry for entry in section if isinstance(entry, dict))


def local_module_dirs(manifest: dict | None = None) -> list[Path]:
    """The directories of the manifest's local modules (entries with ``path:``), absolute; a relative path is
    relative to the manifest's directory."""
    import yaml

    if manifest is None:
        manifest = yaml.safe_load(paths.COLLECTOR_MANIFEST.read_text())
    return [(paths.COLLECTOR_DIR / entry["path"]).resolve() for entry in _manifest_entries(manifest)
            if entry.get("path")]


def local_module_sources(module: Path) -> list[Path]:
    """What the binary is built from in a local module: go.mod, go.sum, non-test Go files and the embedded
    data files beside them (``*.json``), in a stable order."""
    files = [module / "go.mod", module / "go.sum"]
    files += sorted(path for path in module.rglob("*.go") if not path.name.endswith("_test.go")
                    and "testdata" not in path.relative_to(module).parts)
    files += sorted(module.glob("*.json"))
    return [path for path in files if path.is_file()]


def collector_path() -> Path:
    sources = [source for module in local_module_dirs() for source in local_module_sources(module)]
    digest = content_hash(paths.COLLECTOR_MANIFEST, *sources)
    key = f"{paths.COLLECTOR_NAME}-{paths.COLLECTOR_VERSION}-{digest}"
    return paths.binaries_dir() / key / paths.COLLECTOR_NAME


def _jaeger_module_files() -> tuple[Path, Path]:
    return paths.JAEGER_BUILD_MODULE / "go.mod", paths.JAEGER_BUILD_MODULE / "go.sum"


def jaeger_path() -> Path:
    key = f"{paths.JAEGER_NAME}-{paths.JAEGER_VERSION}-{content_hash(*_jaeger_module_files())}"
    return paths.binaries_dir() / key / paths.JAEGER_NAME


def kubernetes_checker_path() -> Path:
    module = paths.KUBERNETES_VALIDATOR_MODULE
    return paths.binaries_dir() / f"{KUBERNETES_CHECKER}-{content_hash(*local_module_sources(module))}" / \
        KUBERNETES_CHECKER


def _debian_binary(name: str) -> Path | None:
    found = shutil.which(name) or shutil.which(name, path=str(DEBIAN_BINARY_DIR))
    return Path(found) if found else None


def _executable(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_binaries() -> StackBinaries:
    """The stack's binaries as they are now, without building anything (None for each missing one)."""
    return StackBinaries(
        collector=_executable(collector_path()),
        jaeger=_executable(jaeger_path()),
        prometheus=_debian_binary("prometheus"),
        promtool=_debian_binary("promtool"),
        redis_server=_debian_binary("redis-server"),
    )


def go_version_key(version: str) -> tuple[int, int, int, int]:
    """A Go version (``1.26``, ``1.26rc1``, ``1.26.0``, with or without ``go``) as a key in Go's own order:
    the language version ``1.26`` < ``1.26rc1`` < ``1.26.0`` < ``1.26.1``. ValueError when it is none."""
    match = _GO_VERSION.fullmatch(version.removeprefix("go"))
    if match is None:
        raise ValueError(f"not a Go version: {version!r}")
    major, minor, patch, stage, number = match.groups()
    if patch is not None:
        return int(major), int(minor), 3, int(patch)
    return int(major), int(minor), _GO_STAGES[stage], int(number or 0)


def jaeger_module_go() -> str:
    """The ``go`` line of jaeger/module/go.mod: the oldest Go that builds the Jaeger wrapper module."""
    go_mod = paths.JAEGER_BUILD_MODULE / "go.mod"
    match = re.search(r"^go\s+(\S+)\s*$", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise StackBuildError(f"{go_mod} has no `go` line")
    return match.group(1)


def required_go() -> str:
    """The oldest Go that builds both: the higher of ocb's minimum and the Jaeger module's ``go`` line."""
    return max(BUILDER_GO_MINIMUM, jaeger_module_go(), key=go_version_key)


def _go() -> Path:
    """The `go` to build with (PATH, else /usr/local/go/bin/go), checked against ``required_go()``."""
    required = required_go()
    needed = f"the stack build needs Go >= {required}"
    advice = f"install Go {required} or newer from {GO_DOWNLOAD_URL} and put its bin/ first on PATH"
    found = shutil.which("go") or _executable(GO_FALLBACK)
    if not found:
        raise StackBuildError(f"{needed}: no `go` on PATH or at {GO_FALLBACK}; {advice}")
    try:
        output = subprocess.run([str(found), "version"], capture_output=True, text=True, timeout=60,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackBuildError(f"{needed}, and `{found} version` failed: {exc}") from exc
    match = re.search(rf"\bgo({_GO_VERSION.pattern})", output)
    if match is None:
        raise StackBuildError(f"{needed}, and `{found} version` names no Go version: {output.strip()!r}")
    if go_version_key(match.group(1)) < go_version_key(required):
        raise StackBuildError(
            f"{needed} (ocb {paths.BUILDER_VERSION} needs {BUILDER_GO_MINIMUM}, jaeger/module/go.mod says "
            f"go {jaeger_module_go()}), but {found} is go{match.group(1)}; {advice}"
        )
    return Path(found)


def _run(command: list[str], *, what: str, cwd: Path, env: dict[str, str], log: Log) -> None:
    """Run one build command, logging ``what`` and the time so far every ``HEARTBEAT_SECONDS``; on failure
    raise with the command and the tail."""
    log(f"{what}: {' '.join(command)} (in {cwd})")
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        while True:
            try:
                returncode = process.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                log(f"{what}: still running, {time.monotonic() - started:.0f}s so far")
        if returncode != 0:
            output.seek(0)
            tail = output.read()[-4000:]
            raise StackBuildError(f"{what} failed (exit {returncode}): {' '.join(command)}\n{tail}")
    log(f"{what}: done in {time.monotonic() - started:.0f}s")


@contextmanager
def _locked(target: Path, log: Log) -> Iterator[None]:
    """Hold an exclusive lock per cached target so concurrent runs build it once; while another run holds it,
    say so at once and then every ``HEARTBEAT_SECONDS``."""
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent.parent / f".{target.parent.name}.lock"
    with open(lock_path, "w") as lock_file:
        waiting_since = last_said = None
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                if last_said is None or now - last_said >= HEARTBEAT_SECONDS:
                    log(f"{target.name}: waiting for another build of it to finish ({lock_path}), "
                        f"{now - waiting_since:.0f}s so far")
                    last_said = now
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def build_cached(target: Path, build_into: Callable[[Path], None], log: Log) -> Path:
    """Return ``target``, building it first when missing: ``build_into(tmp_dir)`` must leave the binary there.

    The temporary directory sits next to the final one (same filesystem) and is renamed into place at once.
    """
    if _executable(target):
        log(f"{target.name}: cached at {target}")
        return target
    with _locked(target, log):
        if _executable(target):
            log(f"{target.name}: built by a concurrent run at {target}")
            return target
        with tempfile.TemporaryDirectory(prefix=f".{target.parent.name}-", dir=target.parent.parent) as tmp:
            work = Path(tmp)
            build_into(work)
            built = work / target.name
            if not _executable(built):
                raise StackBuildError(f"the build of {target.name} left no executable at {built}")
            final_dir = work / "final"
            final_dir.mkdir()
            built.rename(final_dir / target.name)
            shutil.rmtree(target.parent, ignore_errors=True)  # a leftover without the executable
            final_dir.rename(target.parent)
    log(f"{target.name}: built at {target}")
    return target


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{_go().parent}{os.pathsep}{env.get('PATH', '')}"
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


def ensure_builder(log: Log = _log_to_stderr) -> Path:
    """The ocb binary ``<cache>/bin/builder-<version>/builder``, installed by ``go install`` when missing."""

    def build_into(work: Path) -> None:
        _run([str(_go()), "install", f"{paths.BUILDER_MODULE}@{paths.BUILDER_VERSION}"],
             what=f"ocb {paths.BUILDER_VERSION}", cwd=work, env=_go_env(gobin=work), log=log)

    return build_cached(builder_path(), build_into, log)


def build_collector(log: Log = _log_to_stderr) -> Path:
    """The collector built by ocb from the manifest, ``dist.output_path`` pointed at the build directory."""
    import yaml

    builder = ensure_builder(log)

    def build_into(work: Path) -> None:
        manifest = yaml.safe_load(paths.COLLECTOR_MANIFEST.read_text())
        manifest["dist"]["output_path"] = str(work / "src")
        for entry in _manifest_entries(manifest):  # the copy lives elsewhere: local paths made absolute
            if entry.get("path"):
                entry["path"] = str((paths.COLLECTOR_DIR / entry["path"]).resolve())
        manifest_copy = work / "builder-config.yaml"
        manifest_copy.write_text(yaml.safe_dump(manifest, sort_keys=False))
        _run([str(builder), "--config", str(manifest_copy)], what=f"{paths.COLLECTOR_NAME} (ocb)", cwd=work,
             env=_go_env(), log=log)
        (work / "src" / paths.COLLECTOR_NAME).rename(work / paths.COLLECTOR_NAME)

    return build_cached(collector_path(), build_into, log)


def build_jaeger(log: Log = _log_to_stderr) -> Path:
    """Jaeger v2 built by ``go install tool`` from a copy of the wrapper module, verified by its go.sum."""

    def build_into(work: Path) -> None:
        module = work / "module"
        module.mkdir()
        for file in _jaeger_module_files():
            shutil.copyfile(file, module / file.name)
        env = _go_env(gobin=work)
        env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -mod=readonly".strip()
        _run([str(_go()), "install", "tool"], what=f"{paths.JAEGER_NAME} {paths.JAEGER_VERSION} (go install)",
             cwd=module, env=env, log=log)

    return build_cached(jaeger_path(), build_into, log)


def build_kubernetes_checker(log: Log = _log_to_stderr) -> Path:
    """The offline checker of collector/kubernetes/ (``go build`` of collector/kubernetes/validate, go.sum
    verified, go.mod never rewritten); not part of ``build_all``: only its test and its users need it."""

    def build_into(work: Path) -> None:
        env = _go_env()
        env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -mod=readonly".strip()
        _run([str(_go()), "build", "-o", str(work / KUBERNETES_CHECKER), "."], what=KUBERNETES_CHECKER,
             cwd=paths.KUBERNETES_VALIDATOR_MODULE, env=env, log=log)

    return build_cached(kubernetes_checker_path(), build_into, log)


def kubernetes_openapi_document(log: Log = _log_to_stderr) -> Path:
    """Kubernetes' OpenAPI v2 document from the Go module cache (``go mod download``: the module proxy,
    verified by the checksum database; about 22 MB once, then cached), for the checker's required fields."""
    with tempfile.TemporaryDirectory() as outside_any_module:
        command = [str(_go()), "mod", "download", "-json", paths.KUBERNETES_OPENAPI_MODULE]
        log(f"{paths.KUBERNETES_OPENAPI_MODULE}: {' '.join(command)}")
        result = subprocess.run(command, cwd=outside_any_module, env=_go_env(), capture_output=True,
                                text=True, timeout=600, check=False)
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {"Error": (result.stdout + result.stderr).strip()}
    document = Path(info.get("Dir", "")) / paths.KUBERNETES_OPENAPI_FILE
    if info.get("Error") or not document.is_file():
        raise StackBuildError(f"{' '.join(command)} gave no {paths.KUBERNETES_OPENAPI_FILE}: "
                              f"{info.get('Error') or info.get('Dir')}")
    return document


def ensure_debian_packages(log: Log = _log_to_stderr) -> None:
    """Install prometheus and redis-server with apt-get when one of their binaries is missing (needs root)."""
    missing = [name for name in ("prometheus", "promtool", "redis-server") if _debian_binary(name) is None]
    if not missing:
        log(f"Debian packages present: {', '.join(DEBIAN_PACKAGES)}")
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]
    if os.geteuid() != 0:
        raise StackBuildError(
            f"missing {', '.join(missing)}; as root run: apt-get update && {' '.join(install)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update"], what="apt-get update", cwd=Path("/"), env=env, log=log)
    _run(install, what="Debian packages", cwd=Path("/"), env=env, log=log)


def build_all(log: Log = _log_to_stderr) -> StackBinaries:
    """Build or install whatever is missing and return every binary's path; raises ``StackBuildError``.

    The two Go builds run one after the other: each peaks at 1-2.3 GB with Go's default parallelism on a
    2-core machine (docs/stack.md), so running them together would only add memory, not speed.
    """
    try:
        paths.require_stack_files()
    except paths.StackFilesNotFound as exc:
        raise StackBuildError(str(exc)) from exc
    ensure_debian_packages(log)
    build_collector(log)
    build_jaeger(log)
    binaries = find_binaries()
    if binaries.missing():
        raise StackBuildError(f"still missing after the build: {', '.join(binaries.missing())}")
    return binaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m otel_llm.stack.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="build nothing; exit 1 when a binary is missing")
    args = parser.parse_args(argv)
    if args.check:
        binaries = find_binaries()
    else:
        try:
            binaries = build_all()
        except StackBuildError as exc:
            _log_to_stderr(f"error: {exc}")
            return 1
    found = {key: str(value) if value else None for key, value in dataclasses.asdict(binaries).items()}
    print(json.dumps(found, indent=2))
    return 1 if binaries.missing() else 0


if __name__ == "__main__":
    sys.exit(main())
