"""The README's two commands: what they are, that CI runs the same, and what they install.

`script/install-packages` is run against stand-ins for `id`, `sudo`, `dpkg-query`, `apt-get`
and `python3` that record what they were asked: as root without sudo, as a user with sudo,
as a user without it, and on a machine that has everything.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_PACKAGES = ["influxdb", "mosquitto", "chromium"]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_the_readme_has_two_commands_and_ci_runs_the_second_verbatim():
    demo, tests = readme_commands()
    assert demo.startswith("script/demo ") and tests == "script/test"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith("#")]
    assert ci[-1] == tests
    for script in ("demo", "test", "bootstrap", "install-packages"):
        assert os.access(ROOT / "script" / script, os.X_OK), script


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def install_packages(tmp_path: Path, what: str, uid: int, sudo: bool, installed: set[str],
                     venv_module: bool = False) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run script/install-packages with stand-ins; returns its result and the commands run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    record = f'echo "$(basename "$0") $*" >> {log}'
    stub(bin_dir, "id", f'[ "$1" = -u ] && echo {uid}')
    stub(bin_dir, "python3", f'case "$2" in *ensurepip*) exit {0 if venv_module else 1};; esac; exit 0')
    stub(bin_dir, "dpkg-query", 'for p in "$@"; do :; done\n'
                                f'case " {" ".join(sorted(installed))} " in *" $p "*) echo installed;; '
                                '*) echo "dpkg-query: no packages found matching $p" >&2; exit 1;; esac')
    stub(bin_dir, "apt-get", record)
    if sudo:
        stub(bin_dir, "sudo", f'{record}\nexec "$@"')
    # The stand-ins first, then only what a shell script needs (no sudo of the machine).
    path = f"{bin_dir}:{tmp_path / 'system'}"
    (tmp_path / "system").mkdir()
    for tool in ("env", "basename", "dirname", "cat"):
        real = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
        (tmp_path / "system" / tool).symlink_to(real)
    result = subprocess.run(["/bin/sh", str(ROOT / "script" / "install-packages"), what],
                            capture_output=True, text=True, timeout=30,
                            env={"PATH": path, "HOME": str(tmp_path)})
    return result, log.read_text().splitlines() if log.exists() else []


def test_as_root_without_sudo_apt_get_runs_directly(tmp_path):
    result, commands = install_packages(tmp_path, "test", uid=0, sudo=False, installed=set())
    assert result.returncode == 0, result.stderr
    assert commands == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends python3-venv " + " ".join(TEST_PACKAGES)]


def test_a_user_with_sudo_installs_through_sudo(tmp_path):
    result, commands = install_packages(tmp_path, "test", uid=1000, sudo=True, installed={"mosquitto"},
                                        venv_module=True)
    assert result.returncode == 0, result.stderr
    install = "install -y -qq --no-install-recommends influxdb chromium"
    assert commands == ["sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
                        "apt-get update -qq",
                        f"sudo env DEBIAN_FRONTEND=noninteractive apt-get {install}",
                        f"apt-get {install}"]


def test_a_user_without_sudo_is_told_what_to_install_as_root(tmp_path):
    result, commands = install_packages(tmp_path, "demo", uid=1000, sudo=False, installed=set())
    assert result.returncode == 1 and commands == []
    assert "as root: apt-get install --no-install-recommends python3-venv" in result.stderr


@pytest.mark.parametrize("what", ["demo", "test"])
def test_a_ready_machine_asks_for_nothing(tmp_path, what):
    result, commands = install_packages(tmp_path, what, uid=1000, sudo=True,
                                        installed=set(TEST_PACKAGES), venv_module=True)
    assert result.returncode == 0 and commands == [] and result.stderr == ""
