"""`install.sh` on a stock Debian machine (a fresh container, `testbed/install_rig.py`).

The machine has Debian's own python3 with neither pip nor the venv module, and reaches
Debian's mirror and PyPI only through the host's TLS-inspecting proxy, whose CA is in the
system store alone: an installer that pip-installs into the system Python, skips
python3-venv, or lets pip trust only its own CA bundle fails here. One container per
scenario group: root (system-wide), then users with and without sudo.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from launch import __version__
from testbed.install_rig import Machine, ensure_install_image, stock_machine

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

COMMANDS = ("cld", "ocd", "llm-docker")
NEW_VERSION = "99.1.0"
ROOT_VENV = "/usr/local/lib/llm-docker/venv"
SET_NEW_VERSION = f"sed -i 's/^__version__ = .*/__version__ = \"{NEW_VERSION}\"/' src/launch/__init__.py"


@pytest.fixture(scope="module")
def install_image() -> str:
    return ensure_install_image()


@pytest.fixture
def machine(install_image: str) -> Iterator[Machine]:
    with stock_machine(install_image) as made:
        yield made


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("install.sh: warning:")]


def _assert_summary(stdout: str, version: str, venv: str, config: str) -> None:
    """The closing lines: version, venv, commands, the real config folder, the next step."""
    assert f"installed cld (llm-docker) {version} in {venv}" in stdout, stdout
    assert f"config folder: {config}\n" in stdout
    assert "next step: llm-docker init" in stdout
    assert "${" not in stdout, stdout


def test_root_installs_for_everyone_upgrades_in_place_and_uninstalls(machine: Machine) -> None:
    machine.give_checkout("root")
    machine.check("mkdir -p .llm-docker && echo mine > .llm-docker/keep")
    # a command of someone else's where a link would go: refused before anything is installed
    machine.check("printf '#!/bin/sh\\necho other\\n' > /usr/local/bin/ocd && chmod +x /usr/local/bin/ocd")
    refused = machine.run("src/install.sh --no-engine")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("install.sh: /usr/local/bin/ocd exists and is not llm-docker's: "
                                      "move it away, then ./install.sh again")
    assert machine.run("python3 -c 'import ensurepip'").returncode != 0, "a refused install changed the system"
    assert not machine.exists(ROOT_VENV) and not machine.exists("/usr/local/bin/cld")
    machine.check("rm /usr/local/bin/ocd")

    # first install: python3-venv, debootstrap and mmdebstrap from Debian, the package from PyPI (both
    # through the proxy); the engine installs but cannot start in a container: one warning
    first = machine.run("src/install.sh")
    assert first.returncode == 0, first.stderr
    assert "install.sh: installed python3-venv debootstrap mmdebstrap" in first.stdout
    assert len(_warnings(first.stderr)) == 1, first.stderr
    assert "Docker engine did not start" in _warnings(first.stderr)[0]
    _assert_summary(first.stdout, __version__, ROOT_VENV, "/root/.llm-docker")
    for name in COMMANDS:
        assert machine.check(f"readlink /usr/local/bin/{name}").strip() == f"{ROOT_VENV}/bin/{name}"
    assert machine.check("cld --version").strip() == f"cld (llm-docker) {__version__}"
    assert machine.check("llm-docker --help", user="bob").startswith("usage: llm-docker"), "not usable by users"

    # re-run = upgrade in place: the new code in the same venv, the checkout left clean
    machine.check(f"touch {ROOT_VENV}/same-venv && {SET_NEW_VERSION}")
    second = machine.run("src/install.sh --no-engine")
    assert second.returncode == 0, second.stderr
    assert machine.check("cld --version").strip() == f"cld (llm-docker) {NEW_VERSION}"
    assert machine.exists(f"{ROOT_VENV}/same-venv"), "the upgrade made a new venv"
    assert not machine.exists("src/build") and not machine.check("ls src | grep egg-info || true").strip()

    # the venv's interpreter vanished: the next run makes the venv anew
    machine.check(f"for link in {ROOT_VENV}/bin/python*; do ln -sfn /usr/bin/python-gone $link; done")
    third = machine.run("src/install.sh --no-engine")
    assert third.returncode == 0, third.stderr
    assert "making the venv anew" in third.stdout
    assert not machine.exists(f"{ROOT_VENV}/same-venv")
    assert machine.check("cld --version").strip() == f"cld (llm-docker) {NEW_VERSION}"

    # uninstall: commands and venv gone, the config folder kept; --purge removes it
    gone = machine.run("src/install.sh --uninstall")
    assert gone.returncode == 0, gone.stderr
    assert machine.run("command -v cld").returncode != 0
    assert not any(machine.exists(f"/usr/local/bin/{name}") for name in COMMANDS)
    assert not machine.exists("/usr/local/lib/llm-docker")
    assert machine.check("cat .llm-docker/keep").strip() == "mine"
    assert "kept the config folder /root/.llm-docker" in gone.stdout
    machine.check("src/install.sh --uninstall --purge")
    assert not machine.exists("/root/.llm-docker")


def test_users_install_for_themselves_with_sudo_or_once_the_system_has_the_pieces(machine: Machine) -> None:
    for user in ("alice", "bob"):
        machine.give_checkout(user)

    # no consent (no terminal, no --yes): the exact command, exit 1, nothing installed
    asked = machine.run("src/install.sh --no-engine", user="alice")
    assert asked.returncode == 1
    assert asked.stderr.count("\n") == 1, asked.stderr
    assert "./install.sh --yes" in asked.stderr
    # at a terminal it asks first; "n" is no
    declined = machine.run("echo n | script -qec 'src/install.sh --no-engine' /dev/null", user="alice")
    assert declined.returncode == 1
    assert "run as root (sudo): apt-get update && apt-get install -y python3-venv debootstrap mmdebstrap? [y/N]" \
        in declined.stdout
    # no sudo at all: one line with the exact command for root
    refused = machine.run("src/install.sh --yes --no-engine", user="bob")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    command = re.search(r"as root run: (.*?) — then", refused.stderr)
    assert command and command.group(1) == "apt-get update && apt-get install -y python3-venv debootstrap mmdebstrap"
    for user in ("alice", "bob"):
        assert not machine.exists(f"/home/{user}/.local/bin/cld")
        assert not machine.exists(f"/home/{user}/.local/share/llm-docker")

    # with sudo and --yes: the system pieces through sudo, the venv in the user's data folder
    venv = "/home/alice/.local/share/llm-docker/venv"
    first = machine.run("src/install.sh --yes --no-engine", user="alice")
    assert first.returncode == 0, first.stderr
    assert "install.sh: installed python3-venv debootstrap mmdebstrap" in first.stdout
    _assert_summary(first.stdout, __version__, venv, "/home/alice/.llm-docker")
    # (docker exec's PATH lacks ~/.local/bin: the exact line for the profile; a login shell has it)
    assert 'export PATH="/home/alice/.local/bin:$PATH"' in first.stdout
    assert machine.check("cld --version", user="alice", login=True).strip() == f"cld (llm-docker) {__version__}"
    assert machine.check("readlink .local/bin/cld", user="alice").strip() == f"{venv}/bin/cld"

    machine.check(f"touch {venv}/same-venv && {SET_NEW_VERSION}", user="alice")
    second = machine.run("src/install.sh --no-engine", user="alice")
    assert second.returncode == 0, second.stderr
    assert machine.check("cld --version", user="alice", login=True).strip() == f"cld (llm-docker) {NEW_VERSION}"
    assert machine.exists(f"{venv}/same-venv"), "the upgrade made a new venv"

    # bob, without sudo, installs now that the system has python3-venv
    bob = machine.run("src/install.sh --no-engine", user="bob")
    assert bob.returncode == 0, bob.stderr
    assert machine.check("cld --version", user="bob", login=True).strip() == f"cld (llm-docker) {__version__}"

    machine.check("mkdir -p .llm-docker && echo mine > .llm-docker/keep", user="alice")
    gone = machine.run("src/install.sh --uninstall", user="alice")
    assert gone.returncode == 0, gone.stderr
    assert machine.run("command -v cld", user="alice", login=True).returncode != 0
    assert not machine.exists("/home/alice/.local/share/llm-docker")
    assert machine.check("cat .llm-docker/keep", user="alice").strip() == "mine"
    assert machine.check("cld --version", user="bob", login=True).strip() == f"cld (llm-docker) {__version__}"
