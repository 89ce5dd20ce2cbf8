"""compose.yaml is for users (no container engine runs here): validate it as far as we can.

The file is checked against the Compose Specification's JSON schema (the copy that
check-jsonschema ships), its references are followed, and its safety defaults are held:
InfluxDB on loopback only, and no start while a secret in .env is empty.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SECRET = re.compile(r"(PASSWORD|TOKEN|SECRET)$")


def load() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def compose_spec_errors(path: Path) -> str:
    """What the Compose Specification's schema finds wrong in `path` ("" when valid)."""
    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          "vendor.compose-spec", str(path)],
                         capture_output=True, text=True, timeout=60)
    return "" if out.returncode == 0 else out.stdout + out.stderr


def test_the_compose_specification_accepts_the_file():
    assert compose_spec_errors(ROOT / "compose.yaml") == ""


@pytest.mark.parametrize("breakage, complaint", [
    (lambda c: c["services"]["influxdb"].update(ports=8086), "not of type 'array'"),
    (lambda c: c["services"]["collector"].update(depend_on=["influxdb"]), "depend_on"),
])
def test_the_schema_check_finds_a_broken_file(tmp_path, breakage, complaint):
    compose = load()
    breakage(compose)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(compose))
    assert complaint in compose_spec_errors(broken)


def test_influxdb_is_published_on_loopback_only():
    """The collector and Grafana reach InfluxDB inside the compose network; the host gets
    it on 127.0.0.1 only. Grafana (with its login) is the one port on every interface."""
    for name, service in load()["services"].items():
        for port in service.get("ports", []):
            if name == "grafana":
                continue
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert load()["services"]["influxdb"]["ports"] == ["127.0.0.1:8086:8086"]


def test_the_stack_refuses_to_start_while_a_secret_is_empty():
    """.env.example leaves every secret empty, and compose.yaml takes each as
    `${NAME:?message naming NAME}`, which the Compose Specification defines as an error
    when NAME is unset or empty: `docker compose up` stops before starting anything, and
    says which secret to set."""
    example = env_example()
    secrets = {name for name in example if SECRET.search(name)}
    assert secrets == {"INFLUX_ADMIN_PASSWORD", "INFLUX_TOKEN", "GRAFANA_ADMIN_PASSWORD"}
    assert all(example[name] == "" for name in secrets), "a placeholder would start the stack"
    text = (ROOT / "compose.yaml").read_text()
    for name in secrets:
        uses = re.findall(r"\$\{" + name + r"(?![A-Za-z0-9_])([^}]*)\}", text)
        assert uses, f"compose.yaml does not use {name}"
        for rest in uses:
            assert rest.startswith(":?") and name in rest, f"${{{name}{rest}}} does not refuse an empty {name}"
    assert not re.search(r"\$(?!\{)\w", text), "a bare $NAME cannot refuse an empty value"


def test_references_between_services_volumes_and_files_hold():
    compose = load()
    services, volumes = compose["services"], compose.get("volumes", {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()


def test_every_variable_the_stack_needs_is_in_env_example():
    used = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))
    for provisioning in (ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        used |= set(re.findall(r"\$\{(\w+)", provisioning.read_text())) - {"INFLUX_TOKEN", "INFLUX_BUCKET"}
    example = env_example()
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"


def test_grafana_gets_the_variables_its_provisioning_interpolates():
    grafana_env = load()["services"]["grafana"]["environment"]
    for provisioning in (ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        for variable in re.findall(r"\$\{(\w+)\}", provisioning.read_text()):
            assert variable in grafana_env, f"{provisioning.name} needs {variable} in grafana's environment"


def test_dockerfile_copies_what_the_entrypoint_needs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert os.access(ROOT / "deploy" / "collector-entrypoint.sh", os.X_OK)
    assert os.access(ROOT / "deploy" / "influxdb-init" / "dbrp.sh", os.X_OK)
