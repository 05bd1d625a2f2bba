"""SSH into every slot, end to end: the REAL agent image (built through the product), the
launcher as the unprivileged test user, the host's OpenSSH client, and the supervisor's
asyncssh probe.

Every slot is a headless `llm-docker supervise --layout none` launch of the real Claude Code
image with EXIT_TO_DOCKER=true: whatever the agent does, zsh then holds the slot's TTY, so the
container stays up while the tests connect.
Each test uses its own base port (a free block of 60 between 20000 and the kernel's
ephemeral range), so nothing of anyone else's is touched; the ports a test holds "taken"
are sockets it opened itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.agent_images import configure_agent_user
from testbed.processes import free_port_block, port_free
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.image]

CAGE_PROJECTS = "/root/Projects"
PROBE_SECONDS = 2
START_TIMEOUT = 240


# -- fixtures ------------------------------------------------------------------------------

# `agent_images` (the real images, built once) and `model` (the stub model's URL): tests/conftest.py


class Keys:
    """A key pair the test makes (the user's own key, as an IDE would use it)."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.private = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(self.private)],
                       check=True, capture_output=True)

    @property
    def public(self) -> str:
        return Path(f"{self.private}.pub").read_text().strip()


@pytest.fixture
def ssh_user(user: User, agent_images: None, model: str, tmp_path: Path) -> Iterator["SshUser"]:
    if shutil.which("ssh") is None:
        pytest.fail("the host's OpenSSH client is missing (Debian: openssh-client)", pytrace=False)
    base = free_port_block()
    mine = Keys(tmp_path / "keys", "mine")
    # EXIT_TO_DOCKER: whatever the agent does, the slot's container stays up in zsh on its TTY
    configure_agent_user(user, model, extra=f"LLM_DOCKER_SSH_HOST_PORT={base}\n"
                                            f"LLM_DOCKER_SSH_PROBE_SECONDS={PROBE_SECONDS}\nEXIT_TO_DOCKER=true\n")
    user.write(user.state_home / ".env", f"LLM_DOCKER_SSH_AUTHORIZED_KEYS=\"{mine.public}\"\n", mode=0o600)
    helper = SshUser(user, base, mine, tmp_path)
    try:
        yield helper
    finally:
        helper.stop_all()


class Launch:
    """One `llm-docker supervise -n N --layout none` as the test user; stderr to a file."""

    def __init__(self, user: User, project: Path, slots: int, log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.process = user.popen("llm-docker", "supervise", "-n", str(slots), "--layout", "none", cwd=project,
                                  stdin=subprocess.DEVNULL, stdout=self.handle, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()


class SshUser:
    def __init__(self, user: User, base: int, key: Keys, tmp: Path) -> None:
        self.user, self.base, self.key, self.tmp = user, base, key, tmp
        self.project = user.project("app")
        self.launches: list[Launch] = []

    @property
    def pin(self) -> Path:
        return self.user.state_home / "ssh-client" / "known_hosts"

    @property
    def host_public_key(self) -> str:
        return " ".join((self.user.state_home / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2])

    def launch(self, slots: int = 1) -> Launch:
        launch = Launch(self.user, self.project, slots, self.tmp / f"launch-{len(self.launches)}.log")
        self.launches.append(launch)
        return launch

    def stop_all(self) -> None:
        for launch in self.launches:
            launch.stop()

    def status(self) -> list[dict[str, Any]]:
        result = self.user.run("llm-docker", "status", "--json", cwd=self.project)
        assert result.returncode == 0, result.stderr
        return [row for row in json.loads(result.stdout) if row["project"] == str(self.project)]

    def running(self, slots: int, launch: Launch) -> list[dict[str, Any]]:
        """Wait until `slots` slots of this project run; their status rows by slot."""
        def ready() -> list[dict[str, Any]] | None:
            assert launch.process.poll() is None, f"the launch ended:\n{launch.output()}"
            rows = self.status()
            return sorted(rows, key=lambda r: r["slot"]) if len(rows) == slots else None
        try:
            return wait_for(ready, START_TIMEOUT, what=f"{slots} running slot(s)")
        except AssertionError as error:  # say what the launch was doing meanwhile
            raise AssertionError(f"{error}; status: {self.status()}; launch output:\n{launch.output()}") from None

    def ssh(self, port: int, *command: str, key: Path | None = None, login: str | None = None,
            options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """The host's OpenSSH client (as root: uid 1000 has no passwd entry, which ssh needs),
        strict host-key checking against the install's pin and nothing else."""
        argv = ["ssh", "-p", str(port), "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.pin}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "HostKeyAlias=llm-docker", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                "-i", str(key or self.key.private), *options, f"{login or self.login}@127.0.0.1", *command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})

    @property
    def login(self) -> str:
        return "agent"  # the test user has no $USER: the fallback login name


def wait_for(check: Callable[[], Any], timeout: float, *, what: str, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def reachable(ssh_user: SshUser, slot: int) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        rows = {row["slot"]: row for row in ssh_user.status()}
        row = rows.get(slot)
        return row["ssh"] if row and row["ssh"] and row["ssh"]["reachable"] else None
    return check


def container(ssh_user: SshUser, slot: int) -> str:
    return next(row["container"] for row in ssh_user.status() if row["slot"] == slot)


@contextlib.contextmanager
def held_ports(ports: range) -> Iterator[None]:
    """Listen on `ports` of 127.0.0.1 (the test's own sockets): "taken" for the launch."""
    sockets = []
    try:
        for port in ports:
            held = socket.socket()
            held.bind(("127.0.0.1", port))
            held.listen()
            sockets.append(held)
        yield
    finally:
        for held in sockets:
            held.close()


# -- the tests -----------------------------------------------------------------------------

def test_key_only_login_as_the_container_user_in_the_project(ssh_user: SshUser, tmp_path: Path) -> None:
    launch = ssh_user.launch(1)
    [row] = ssh_user.running(1, launch)
    started = time.monotonic()
    ssh = wait_for(reachable(ssh_user, 1), 5 + 3, what="status: ssh reachable")  # + one status call's start-up
    assert time.monotonic() - started <= 5 + 3
    port = ssh["port"]
    assert port == ssh_user.base and ssh["latency_ms"] > 0 and ssh["error"] is None

    result = ssh_user.ssh(port, "pwd; id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{CAGE_PROJECTS}/app", str(ssh_user.user.uid)]

    # what the server offers: public keys only (no password, no keyboard-interactive)
    verbose = ssh_user.ssh(port, "true", options=("-v", "-o", "PreferredAuthentications=password,keyboard-interactive"))
    assert verbose.returncode == 255
    offered = [line for line in verbose.stderr.splitlines() if "Authentications that can continue" in line]
    assert offered and all(line.rstrip().endswith(": publickey") for line in offered), verbose.stderr
    assert "Permission denied (publickey)" in verbose.stderr

    stranger = Keys(tmp_path / "keys", "stranger")
    refused = ssh_user.ssh(port, "true", key=stranger.private)
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr

    for login in ("root", "nobody", "node"):
        other = ssh_user.ssh(port, "true", login=login)
        assert other.returncode == 255 and "Permission denied" in other.stderr, (login, other.stderr)

    # no agent or X11 forwarding
    forwarded = ssh_user.ssh(port, "echo agent=${SSH_AUTH_SOCK:-none} display=${DISPLAY:-none}",
                             options=("-A", "-X"))
    assert "agent=none display=none" in forwarded.stdout, forwarded.stderr


def test_one_host_key_per_install_and_one_port_per_slot(ssh_user: SshUser) -> None:
    launch = ssh_user.launch(2)
    rows = ssh_user.running(2, launch)
    ports = [row["ssh"]["port"] for row in rows]
    assert ports == [ssh_user.base, ssh_user.base + 1]
    expected = ssh_user.host_public_key
    assert ssh_user.pin.read_text().split()[1:3] == expected.split()

    def served(port: int) -> str:
        def scan() -> str | None:
            result = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
                                    capture_output=True, text=True, timeout=30)
            lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
            return " ".join(lines[0].split()[1:3]) if lines else None
        return wait_for(scan, 30, what=f"a host key on port {port}")

    assert [served(port) for port in ports] == [expected, expected]
    for row in rows:
        assert f"127.0.0.1:{row['ssh']['port']}->2222/tcp" in row["ports"]
    launch.stop()

    again = ssh_user.launch(1)
    [row] = ssh_user.running(1, again)
    assert served(row["ssh"]["port"]) == expected  # the same key, launch after launch


def test_a_taken_port_moves_on_and_a_full_range_is_one_line(ssh_user: SshUser) -> None:
    with held_ports(range(ssh_user.base, ssh_user.base + 1)):
        launch = ssh_user.launch(1)
        [row] = ssh_user.running(1, launch)
        assert row["ssh"]["port"] == ssh_user.base + 1
        assert f"127.0.0.1:{ssh_user.base} is taken — slot 1 uses 127.0.0.1:{ssh_user.base + 1}" in launch.output()
        ok = wait_for(lambda: ssh_user.ssh(ssh_user.base + 1, "true").returncode == 0, 30,
                      what="login on the moved port")
        assert ok
        launch.stop()
    wait_for(lambda: port_free(ssh_user.base + 1), 30, what="the stopped slot's SSH port released")

    with held_ports(range(ssh_user.base, ssh_user.base + 51)):
        result = ssh_user.user.run("llm-docker", "supervise", "-n", "1", "--layout", "none", cwd=ssh_user.project,
                                   timeout=180)
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    refusal = f"no free SSH host port in 127.0.0.1:{ssh_user.base}-{ssh_user.base + 50}"
    assert len(lines) == 1 and refusal in lines[0], lines


def test_llm_docker_ssh_and_ssh_config(ssh_user: SshUser, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing", pytrace=False)
    launch = ssh_user.launch(1)
    ssh_user.running(1, launch)
    wait_for(reachable(ssh_user, 1), 30, what="status: ssh reachable")
    # as root with the user's LLM_DOCKER_HOME (OpenSSH needs a passwd entry for its uid)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LLM_DOCKER_HOME": str(ssh_user.user.state_home),
           "TERM": "xterm", "PYTHONPATH": str(ssh_user.user.code)}
    from testbed.processes import ENTRY

    tmux_dir = tmp_path / "tmux"
    tmux_dir.mkdir()
    socket_path = tmux_dir / "sock"
    command = shlex.join([ssh_user.user.python.as_posix(), "-c", ENTRY["llm-docker"], "ssh", "claude", "1"])
    tmux = ["tmux", "-S", str(socket_path)]
    subprocess.run([*tmux, "new-session", "-d", "-x", "160", "-y", "40", "-c", str(ssh_user.project), command],
                   check=True, env=env)
    try:
        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True, env=env).stdout

        time.sleep(3)
        subprocess.run([*tmux, "send-keys", "echo MARK-$((6*7)) $(pwd) $(id -u)", "Enter"], check=True, env=env)
        text = wait_for(lambda: (s := screen()) and f"MARK-42 {CAGE_PROJECTS}/app {ssh_user.user.uid}" in s and s,
                        30, what="the slot's shell answering in tmux")
        assert "Host key verification failed" not in text
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, env=env)

    result = ssh_user.user.run("llm-docker", "ssh-config", cwd=ssh_user.project)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "ssh_config"
    config.write_text(result.stdout)
    assert "Host llm-docker-app-1\n" in result.stdout and "StrictHostKeyChecking yes" in result.stdout
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    connected = subprocess.run(["ssh", "-F", str(config), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                                "llm-docker-app-1", "true"], capture_output=True, text=True, timeout=60,
                               env={"PATH": os.environ["PATH"], "HOME": str(empty_home)})
    assert connected.returncode == 0, connected.stderr
    written = ssh_user.user.run("llm-docker", "ssh-config", "--write", cwd=ssh_user.project)
    assert written.returncode == 0 and (ssh_user.user.state_home / "ssh-client" / "config").read_text() == result.stdout


def test_the_probe_sees_sshd_go_and_come_back_and_a_foreign_host_key(ssh_user: SshUser) -> None:
    launch = ssh_user.launch(1)
    ssh_user.running(1, launch)
    wait_for(reachable(ssh_user, 1), 30, what="status: ssh reachable")
    name = container(ssh_user, 1)

    subprocess.run(["docker", "exec", name, "pkill", "-x", "sshd"], check=True, capture_output=True)
    killed = time.monotonic()

    def down() -> dict[str, Any] | None:
        row = next(row for row in ssh_user.status() if row["slot"] == 1)
        return row["ssh"] if row["ssh"]["reachable"] is False else None

    ssh = wait_for(down, 2 * PROBE_SECONDS + 5, what="status: ssh unreachable")
    assert time.monotonic() - killed <= 2 * PROBE_SECONDS + 5
    assert ssh["error"]  # refused, or reset by Docker's port proxy in front of the closed port
    time.sleep(4 * PROBE_SECONDS)  # several more failed probes: still one notice
    assert launch.output().count("SSH: unreachable") == 1, launch.output()

    # sshd back (the image's own hook, as the container's user): one "again"
    subprocess.run(["docker", "exec", name, "/opt/llm-docker/entrypoint.d/50-sshd"], check=True, capture_output=True)
    wait_for(reachable(ssh_user, 1), 8 * PROBE_SECONDS + 5, what="status: ssh reachable again")
    wait_for(lambda: "SSH: reachable again" in launch.output(), 10, what="the recovery notice")
    assert launch.output().count("SSH: reachable again") == 1

    # another host key on disk: what sshd now serves no longer matches the install's pin
    keys = ssh_user.user.state_home / "ssh"
    stranger = Keys(ssh_user.tmp / "hostkey", "ssh_host_ed25519_key")
    for suffix in ("", ".pub"):
        shutil.copyfile(f"{stranger.private}{suffix}", keys / f"ssh_host_ed25519_key{suffix}")
    ssh_user.user.own(keys)

    def mismatch() -> dict[str, Any] | None:
        row = next(row for row in ssh_user.status() if row["slot"] == 1)
        return row["ssh"] if row["ssh"]["error"] and "host key mismatch" in row["ssh"]["error"] else None

    ssh = wait_for(mismatch, 2 * PROBE_SECONDS + 5, what="status: host key mismatch")
    assert ssh["reachable"] is False
    wait_for(lambda: "does NOT match" in launch.output(), 10, what="the mismatch notice")
    assert launch.output().count("does NOT match") == 1
    strict = ssh_user.ssh(ssh["port"], "true")
    assert strict.returncode == 255 and "Host key verification failed" in strict.stderr
