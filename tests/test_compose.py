"""compose.yaml is for users (no Docker engine runs here): validate it as far as we can."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def load() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose not installed")
def test_a_compose_implementation_accepts_the_file():
    out = subprocess.run(["docker-compose", "-f", "compose.yaml", "--env-file", ".env.example", "config", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})
    assert out.returncode == 0, out.stderr


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
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
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
