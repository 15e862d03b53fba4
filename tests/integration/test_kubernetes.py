"""collector/kubernetes/ checked offline: the manifests by otel-llm-k8s-check (strict decoding into the
k8s.io/api types, required fields from Kubernetes' OpenAPI document, the tiers' invariants:
collector/kubernetes/validate), broken copies rejected with the rule they break, and each pod's collector
configs, as the ConfigMap and the container env give them, through the real ``otelcol-llm validate``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from otel_llm.stack import paths
from otel_llm.stack.build import build_kubernetes_checker, kubernetes_openapi_document

TIMEOUT_SECONDS = 60
MOUNT = "/etc/otel-llm"


@pytest.fixture(scope="module")
def checker() -> list[str]:
    """The checker's command with Kubernetes' OpenAPI document; a directory is appended."""
    return [str(build_kubernetes_checker()), "-openapi", str(kubernetes_openapi_document())]


def _check(checker: list[str], directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*checker, str(directory)], capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                          check=False)


def _copy_manifests(tmp_path: Path) -> Path:
    copy = tmp_path / "kubernetes"
    copy.mkdir()
    for manifest in paths.KUBERNETES_DIR.glob("*.yaml"):
        shutil.copyfile(manifest, copy / manifest.name)
    return copy


def test_shipped_manifests_pass(checker):
    """Every object of kustomization.yaml decodes strictly, has its required fields, keeps every invariant."""
    result = _check(checker, paths.KUBERNETES_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok: 7 objects, required fields checked"


# (id, file, text to replace, its replacement, the problem the checker must report)
BROKEN = [
    ("misspelt-field", "gateway.yaml", "clusterIP: None", "clusterIp: None",
     'unknown field "spec.clusterIp"'),
    ("duplicate-key", "agent.yaml", "  name: otel-llm-agent\n  namespace",
     "  name: otel-llm-agent\n  name: x\n  namespace", 'key "name" already set in map'),
    ("wrong-type", "gateway.yaml", "replicas: 2", "replicas: two",
     "cannot unmarshal string into Go struct field"),
    ("bad-quantity", "gateway.yaml", "memory: 2Gi", "memory: 2GB", "quantities must match"),
    ("required-field-missing", "gateway.yaml", "    - name: otlp-grpc\n      port: 4317\n",
     "    - name: otlp-grpc\n", 'Service.spec.ports[0]: missing required field "port"'),
    ("not-headless", "gateway.yaml", "  clusterIP: None\n", "", "which is not headless"),
    ("service-selects-nothing", "agent.yaml", "otel-llm-agent\n  internalTrafficPolicy",
     "otel-llm-agents\n  internalTrafficPolicy", "matches no workload's pod template"),
    ("workload-selector-misses-pods", "gateway.yaml",
     "matchLabels:\n      app.kubernetes.io/name: otel-llm-gateway\n  strategy",
     "matchLabels:\n      app.kubernetes.io/name: other\n  strategy",
     "spec.selector does not select the pod template's labels"),
    ("config-key-missing", "agent.yaml", "/etc/otel-llm/agent-dns.yaml", "/etc/otel-llm/agent-dnz.yaml",
     'has no key "agent-dnz.yaml"'),
    ("probe-off-health-port", "agent.yaml", "path: /\n              port: health",
     "path: /\n              port: telemetry", "but health_check listens on"),
    ("service-port-undeclared", "gateway.yaml", "targetPort: span-metrics", "targetPort: metrics",
     "targets metrics, which Deployment otel-llm-gateway's containers do not declare"),
    ("memory-limiter-above-limit", "gateway.yaml", 'value: "1600"', 'value: "1900"',
     "above 80% of the container"),
    ("no-memory-limit", "agent.yaml", '              cpu: "1"\n              memory: 512Mi\n',
     '              cpu: "1"\n', "no resources.limits.memory"),
    ("dns-name-elsewhere", "agent.yaml", "value: otel-llm-gateway-headless.observability",
     "value: otel-llm-gateway-headless.default", "names no Service of these manifests"),
    ("budget-blocks-drains", "gateway.yaml", "maxUnavailable: 1\n  selector", "maxUnavailable: 0\n  selector",
     "blocks every drain"),
]


@pytest.mark.parametrize(("file", "old", "new", "problem"), [case[1:] for case in BROKEN],
                         ids=[case[0] for case in BROKEN])
def test_broken_manifest_is_rejected_naming_the_rule(checker, tmp_path, file, old, new, problem):
    """One deliberate break in a copy of the manifests: exit 1 and a line naming what is wrong."""
    copy = _copy_manifests(tmp_path)
    text = (copy / file).read_text()
    assert old in text, f"the break no longer applies to {file}: {old!r}"
    (copy / file).write_text(text.replace(old, new, 1))
    result = _check(checker, copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert problem in result.stdout, result.stdout


def test_manifest_left_out_of_the_kustomization_is_reported(checker, tmp_path):
    """A YAML file beside the manifests that kubectl apply -k would skip is an error, not left unchecked."""
    copy = _copy_manifests(tmp_path)
    (copy / "extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n")
    result = _check(checker, copy)
    assert result.returncode == 1
    assert "extra.yaml: not listed in kustomization.yaml's resources" in result.stdout


def _pod(manifest: str, kind: str) -> tuple[list[str], dict[str, str]]:
    """The container's --config file names and its plain env values (secret references left out)."""
    documents = yaml.safe_load_all((paths.KUBERNETES_DIR / manifest).read_text())
    (workload,) = [doc for doc in documents if doc and doc["kind"] == kind]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    files = [arg.removeprefix(f"--config={MOUNT}/") for arg in container["args"]]
    return files, {item["name"]: item["value"] for item in container["env"] if "value" in item}


def _validate_as_the_pod(collector: Path, tmp_path: Path, manifest: str, kind: str,
                         edit=lambda name, text: text) -> subprocess.CompletedProcess:
    configmap = yaml.safe_load(paths.KUBERNETES_CONFIGMAP.read_text())
    files, env = _pod(manifest, kind)
    if "OTEL_LLM_COLLECTOR_STORAGE_DIR" in env:
        env["OTEL_LLM_COLLECTOR_STORAGE_DIR"] = str(tmp_path / "storage")
    flags = []
    for name in files:
        (tmp_path / name).write_text(edit(name, configmap["data"][name]))
        flags += ["--config", str(tmp_path / name)]
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([str(collector), "validate", *flags], env={**base, **env}, capture_output=True,
                          text=True, timeout=TIMEOUT_SECONDS, check=False)


@pytest.mark.parametrize(("manifest", "kind"), [("agent.yaml", "DaemonSet"), ("gateway.yaml", "Deployment")])
def test_pod_configs_validate_with_the_pods_env(stack_binaries, tmp_path, manifest, kind):
    """What a pod runs (its ConfigMap keys in its --config order, its env) passes otelcol-llm validate."""
    result = _validate_as_the_pod(stack_binaries.collector, tmp_path, manifest, kind)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dns_overlay_must_remove_the_static_resolver(stack_binaries, tmp_path):
    """Control: without agent-dns.yaml's `static: null` the agent holds two resolvers and fails validation."""
    result = _validate_as_the_pod(stack_binaries.collector, tmp_path, "agent.yaml", "DaemonSet",
                                  lambda name, text: text.replace("      static: null\n", ""))
    assert result.returncode != 0
    assert "only one resolver should be specified" in result.stdout + result.stderr
