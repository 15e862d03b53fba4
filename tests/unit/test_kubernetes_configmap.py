"""otel_llm.stack.kubernetes: the Kubernetes ConfigMap carries the collector configs byte for byte, and the
manifests run exactly the --config files that tests/integration/test_configs.py validates."""

from __future__ import annotations

import shutil

import pytest
import yaml

from otel_llm.stack import kubernetes, paths

MOUNT = "/etc/otel-llm"


def _documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((paths.KUBERNETES_DIR / name).read_text()) if doc]


def _container(name: str, kind: str) -> dict:
    (workload,) = [doc for doc in _documents(name) if doc["kind"] == kind]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


class TestConfigMapIsCurrent:
    def test_check_passes_on_the_committed_configmap(self):
        """`python -m otel_llm.stack.kubernetes --check` passes: configmap.yaml matches collector/*.yaml."""
        assert kubernetes.main(["--check"]) == 0

    def test_every_key_is_a_collector_file_byte_for_byte(self):
        """Each ConfigMap key holds the text of the collector file of that name, unchanged."""
        (configmap,) = _documents(paths.KUBERNETES_CONFIGMAP.name)
        assert configmap["data"] == {file.name: file.read_text() for file in kubernetes.config_files()}

    def test_an_edited_collector_config_makes_the_check_fail_until_written(self, tmp_path, monkeypatch,
                                                                          capsys):
        """A collector config changed without --write is reported stale; --write brings the copy in line."""
        collector = tmp_path / "collector"
        shutil.copytree(paths.COLLECTOR_DIR, collector, ignore=shutil.ignore_patterns("_build", "validate"))
        target = collector / "kubernetes" / "configmap.yaml"
        agent = collector / "agent.yaml"
        monkeypatch.setattr(paths, "KUBERNETES_AGENT_CONFIGS", tuple(
            collector / file.name for file in paths.KUBERNETES_AGENT_CONFIGS))
        monkeypatch.setattr(paths, "KUBERNETES_GATEWAY_CONFIGS", tuple(
            collector / file.name for file in paths.KUBERNETES_GATEWAY_CONFIGS))
        monkeypatch.setattr(paths, "KUBERNETES_CONFIGMAP", target)
        assert kubernetes.main(["--check"]) == 0
        agent.write_text(agent.read_text().replace("check_interval: 1s", "check_interval: 2s"))
        assert kubernetes.main(["--check"]) == 1
        assert kubernetes.main(["--write"]) == 0
        assert f"{target}: updated" in capsys.readouterr().out
        assert "check_interval: 2s" in yaml.safe_load(target.read_text())["data"]["agent.yaml"]
        assert kubernetes.main(["--write"]) == 0
        assert f"{target}: already current" in capsys.readouterr().out

    def test_a_file_a_literal_block_cannot_carry_is_refused(self, tmp_path, monkeypatch):
        """A config ending in blank lines would change in the ConfigMap: render refuses it, naming it."""
        odd = tmp_path / "odd.yaml"
        odd.write_text("a: 1\n\n\n")
        monkeypatch.setattr(paths, "KUBERNETES_AGENT_CONFIGS", (odd,))
        monkeypatch.setattr(paths, "KUBERNETES_GATEWAY_CONFIGS", ())
        with pytest.raises(ValueError, match="odd.yaml"):
            kubernetes.render()


class TestManifestsRunTheValidatedConfigs:
    @pytest.mark.parametrize(("manifest", "kind", "configs"), [
        ("agent.yaml", "DaemonSet", paths.KUBERNETES_AGENT_CONFIGS),
        ("gateway.yaml", "Deployment", paths.KUBERNETES_GATEWAY_CONFIGS),
    ])
    def test_container_args_are_the_tiers_config_files_in_order(self, manifest, kind, configs):
        """The pod's --config files are paths.KUBERNETES_*_CONFIGS, the ones `otelcol-llm validate` checks."""
        args = _container(manifest, kind)["args"]
        assert args == [f"--config={MOUNT}/{file.name}" for file in configs]

    def test_agents_dns_name_is_the_overlays_default(self):
        """The DaemonSet's OTEL_LLM_COLLECTOR_GATEWAYS_DNS equals agent-dns.yaml's default: one name."""
        env = {item["name"]: item.get("value") for item in _container("agent.yaml", "DaemonSet")["env"]}
        overlay = paths.COLLECTOR_AGENT_DNS_OVERLAY.read_text()
        name = env["OTEL_LLM_COLLECTOR_GATEWAYS_DNS"]
        assert f"${{env:OTEL_LLM_COLLECTOR_GATEWAYS_DNS:-{name}}}" in overlay


def test_openapi_document_is_of_the_release_of_the_checkers_api_types():
    """k8s.io/kubernetes v1.X.Y (required fields) and k8s.io/api v0.X.Y (types) describe one release."""
    go_mod = (paths.KUBERNETES_VALIDATOR_MODULE / "go.mod").read_text()
    (api_version,) = [line.split()[1] for line in go_mod.splitlines()
                      if line.strip().startswith("k8s.io/api ")]
    assert paths.KUBERNETES_OPENAPI_MODULE == f"k8s.io/kubernetes@v1.{api_version.removeprefix('v0.')}"
