"""The example deployments in deploy/ (a systemd template unit, a Kubernetes StatefulSet) agree
with the command line and the configuration they run: no engine runs them here, so each is
read the way its engine would and checked against `ev-collector`'s own parser and config."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from collector.cli import build_parser
from collector.config import ConfigError, load_config
from collector.shards import SHARD_ENV

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
MANIFEST = ROOT / "deploy" / "kubernetes" / "ev-collector.yaml"


def unit_file(path: Path) -> dict[str, dict[str, str]]:
    """[Section] -> key -> value, as systemd reads a unit (comments and blank lines skipped)."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if match := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(match.group(1), {})
        else:
            key, _, value = line.partition("=")
            assert current is not None and key.strip() not in current, line
            current[key.strip()] = value.strip()
    return sections


def with_secrets(monkeypatch, text: str) -> None:
    """Every `{ env = "NAME" }` the config reads, set to a stand-in value."""
    for name in re.findall(r'\{\s*env\s*=\s*"(\w+)"\s*\}', text):
        monkeypatch.setenv(name, "stand-in")


def test_the_systemd_template_runs_the_shard_its_instance_names(tmp_path, monkeypatch):
    unit = unit_file(SYSTEMD / "ev-collector@.service")
    program, *args = shlex.split(unit["Service"]["ExecStart"].replace("%i", "2"))
    assert program.endswith("/ev-collector")
    parsed = build_parser().parse_args(args)
    assert (parsed.command, parsed.shard, parsed.config) == ("run", 2, "/etc/ev-collector/config.toml")
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    # The config beside it, installed where ExecStart reads it: each shard's store is in the
    # state directory systemd creates for its instance.
    text = (SYSTEMD / "config.toml").read_text()
    with_secrets(monkeypatch, text)
    monkeypatch.delenv(SHARD_ENV, raising=False)
    state = Path("/var/lib") / unit["Service"]["StateDirectory"]
    shards = load_config(SYSTEMD / "config.toml").collector.shards
    assert shards > 1
    for shard in range(shards):
        config = load_config(SYSTEMD / "config.toml", shard)
        assert config.store.path.parent == Path(str(state).replace("%i", str(shard)))
    assert f"ev-collector@{shards - 1}" in (SYSTEMD / "ev-collector@.service").read_text()


def statefulset_parts() -> tuple[dict, dict, dict]:
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}
    assert set(docs) == {"ConfigMap", "Service", "StatefulSet"}
    return docs["ConfigMap"], docs["Service"], docs["StatefulSet"]


def test_the_statefulset_gives_each_pod_its_ordinal_as_shard_and_a_volume_of_its_own(tmp_path, monkeypatch):
    config_map, service, statefulset = statefulset_parts()
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    parsed = build_parser().parse_args(container["args"])
    assert container["command"] == ["ev-collector"] and parsed.command == "run" and parsed.shard is None
    # the shard index comes from the environment: the pod's ordinal
    [shard_env] = [e for e in container["env"] if e["name"] == SHARD_ENV]
    assert shard_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    [claim] = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] in mounts and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    [config_volume] = [v for v in pod["volumes"] if v["name"] in mounts and "configMap" in v]
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert Path(parsed.config).parent == Path(mounts[config_volume["name"]])

    # the config it mounts: shards = replicas, each pod's store on its own volume
    text = config_map["data"][Path(parsed.config).name]
    path = tmp_path / "config.toml"
    path.write_text(text)
    with_secrets(monkeypatch, text)
    for ordinal in range(spec["replicas"]):
        monkeypatch.setenv(SHARD_ENV, str(ordinal))
        config = load_config(path)
        assert config.collector.shards == spec["replicas"] and config.collector.shard == ordinal
        assert config.store.path.parent == Path(mounts[claim["metadata"]["name"]])
    monkeypatch.setenv(SHARD_ENV, str(spec["replicas"]))
    with pytest.raises(ConfigError, match="must be below"):
        load_config(path)

    assert spec["serviceName"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
