"""SSH planning (`launch.ssh`), the spec's SSH parts, the install's keys and the probe's
judgement — no Docker. The real sshd, ports and probe: tests/test_ssh_docker.py."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import pytest

from launch import ssh as plan
from launch.argv import parse_argv
from launch.config import Config, ConfigError, load_config
from launch.errors import UsageError
from launch.tools import Tool
from supervisor.ssh_keys import ensure_install_keys, read_status, replace_atomically, status_folder
from supervisor.ssh_ports import choose_host_port, loopback_port_free
from testbed.plans import host_facts as facts, spec_of

ED25519 = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
RSA = asyncssh.generate_private_key("ssh-rsa", key_size=2048).export_public_key("openssh").decode().strip()


# -- authorized keys ---------------------------------------------------------------------

def test_authorized_keys_newlines_or_backslash_n_comments_and_blank_lines() -> None:
    assert plan.parse_authorized_keys(f"{ED25519} me@laptop\\n{RSA}") == (f"{ED25519} me@laptop", RSA)
    assert plan.parse_authorized_keys(f"# mine\n\n{ED25519}\n") == (ED25519,)
    assert plan.parse_authorized_keys("") == ()


@pytest.mark.parametrize("text", [
    "ssh-ed25519 AAAA... you@host",                     # the README's placeholder
    "<paste your public key here>",
    "ssh-ed25519",                                      # no key data
    f"command=\"/bin/sh\" {ED25519}",                  # options are refused
    "-----BEGIN OPENSSH PRIVATE KEY-----",              # a private key
    "SHA256:fnowCklfDLOSSzT7Quem4zXd2ltgpcO0pxU8oAe9sjw",  # a fingerprint
    "ssh-rsa " + ED25519.split()[1],                    # data of another type
])
def test_garbage_is_refused_without_echoing_the_key(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        plan.parse_authorized_keys(text)
    assert "\n" not in str(raised.value) and "AAAAC3" not in str(raised.value)


def test_a_placeholder_in_env_is_a_one_line_config_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('LLM_DOCKER_SSH_AUTHORIZED_KEYS="ssh-ed25519 AAAA... you@host"\n')
    (tmp_path / ".env").chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, {}, tmp_path)
    message = str(raised.value)
    assert "\n" not in message and ".env:1" in message and "LLM_DOCKER_SSH_AUTHORIZED_KEYS" in message


def test_authorized_keys_file_is_the_users_keys_plus_the_install_key_once() -> None:
    assert plan.authorized_keys_text([ED25519, ED25519], RSA + "\n") == f"{ED25519}\n{RSA}\n"


# -- ports and names -------------------------------------------------------------------------

def test_slot_ports_and_the_plus_fifty_window() -> None:
    assert plan.candidate_ports(8884, None) == range(8884, 8935)
    assert plan.candidate_ports(8884, 3) == range(8886, 8937)
    assert plan.candidate_ports(65530, 1) == range(65530, 65536)
    taken = {8886, 8887}
    assert plan.choose_port(plan.candidate_ports(8884, 3), lambda p: p not in taken) == 8888
    with pytest.raises(plan.SshPortError) as raised:
        plan.choose_port(plan.candidate_ports(8884, 3), lambda p: False)
    assert "127.0.0.1:8886-8936" in str(raised.value) and "\n" not in str(raised.value)


def test_choose_host_port_skips_a_bound_port_and_says_so() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        base = held.getsockname()[1]
        assert not loopback_port_free(base)
        port, notice = choose_host_port(base, 1, taken=set())
    assert port > base and notice == f"SSH: 127.0.0.1:{base} is taken — slot 1 uses 127.0.0.1:{port}"
    again, notice = choose_host_port(base, 1, taken={base})
    assert again != base


def test_login_name_is_the_launchers_never_root() -> None:
    assert plan.login_name({"USER": "alice"}, 1000) == "alice"
    assert plan.login_name({"USER": "root"}, 1000) == "agent"
    assert plan.login_name({"USER": "alice"}, 0) == "agent"
    assert plan.login_name({"USER": "Robert'); drop"}, 1000) == "agent"
    assert plan.login_name({}, 1000) == "agent"


def test_ssh_words() -> None:
    assert plan.parse_ssh_words([]) == plan.SshRequest()
    assert plan.parse_ssh_words(["claude", "2", "proj", "--", "-v", "ls"]) == \
        plan.SshRequest("claude", 2, Path("proj"), ("-v", "ls"))
    assert plan.parse_ssh_words(["3"]).slot == 3
    with pytest.raises(UsageError):
        plan.parse_ssh_words(["claude", "1", "a", "b"])
    with pytest.raises(UsageError):
        plan.parse_ssh_words(["100"])


def test_ssh_config_blocks_pin_the_install_key_strictly(tmp_path: Path) -> None:
    targets = [plan.SshTarget("my app", "claude", 1, 8884, "alice"), plan.SshTarget("x", "opencode", 2, 8890, "agent")]
    text = plan.ssh_config_text(targets, tmp_path / "client dir")
    assert "Host llm-docker-my-app-1\n    HostName 127.0.0.1\n    Port 8884\n    User alice\n" in text
    assert "Host llm-docker-x-2-opencode\n" in text
    assert "    StrictHostKeyChecking yes\n" in text and "    HostKeyAlias llm-docker\n" in text
    assert f'    UserKnownHostsFile "{tmp_path}/client dir/known_hosts"\n' in text
    assert "    ForwardAgent no\n" in text and "    ForwardX11 no\n" in text
    argv = plan.ssh_argv(targets[0], tmp_path, ["-v"])
    assert argv[:3] == ["ssh", "-p", "8884"] and argv[-2:] == ["-v", "alice@127.0.0.1"]


# -- the spec -----------------------------------------------------------------------------

def spec_for(line: str, config: Config, *, ssh_host_port: int | None = None) -> dict[str, Any]:
    request = parse_argv(Tool.CLAUDE, line.split(), cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    return spec_of(request, config, facts(environ={"USER": "alice"}), ssh_host_port=ssh_host_port).create


def test_spec_ssh_on_by_default_no_capability_ro_keys_labels_and_listen() -> None:
    planned = spec_of(parse_argv(Tool.CLAUDE, ["--slot", "2"], cwd=Path("/home/u/Projects/app"),
                                 is_dir=lambda p: False), Config(), facts(environ={"USER": "alice"}),
                      ssh_host_port=8899)
    body = planned.create
    assert body["HostConfig"]["CapAdd"] == [] and body["HostConfig"]["CapDrop"] == ["ALL"]
    assert {"Type": "bind", "Source": "/home/u/.llm-docker/ssh", "Target": "/etc/ssh/keys",
            "ReadOnly": True} in body["HostConfig"]["Mounts"]
    assert body["Labels"]["io.llm-docker.ssh-port"] == "8899" and body["Labels"]["io.llm-docker.ssh-user"] == "alice"
    env = dict(item.split("=", 1) for item in body["Env"])
    assert env["LLM_DOCKER_SSH_LISTEN"] == "0.0.0.0:2222" and env["LLM_DOCKER_SSH_USER"] == "alice"
    assert "LLM_DOCKER_SSH_AUTHORIZED_KEYS" not in env
    # the gateway owns the namespace and publishes the slot's port
    assert planned.gateway is not None
    assert planned.gateway.create["HostConfig"]["PortBindings"]["2222/tcp"] == [{"HostIp": "127.0.0.1",
                                                                                  "HostPort": "8899"}]
    # without the supervisor's choice (dry-run): the slot's own port
    assert spec_for("--slot 2", Config())["Labels"]["io.llm-docker.ssh-port"] == "8885"


def test_spec_host_network_listens_on_the_hosts_loopback_and_publishes_nothing() -> None:
    body = spec_for("", Config(network_mode="host"), ssh_host_port=8890)
    assert body["HostConfig"]["NetworkMode"] == "host" and "PortBindings" not in body["HostConfig"]
    env = dict(item.split("=", 1) for item in body["Env"])
    assert env["LLM_DOCKER_SSH_LISTEN"] == "127.0.0.1:8890"


def test_spec_ssh_off_and_low_port() -> None:
    body = spec_for("", Config(llm_docker_ssh_enabled=False))
    assert "io.llm-docker.ssh-port" not in body["Labels"]
    assert not any(m["Target"] == "/etc/ssh/keys" for m in body["HostConfig"]["Mounts"])
    body = spec_for("", Config(llm_docker_ssh_port=22))
    assert body["HostConfig"]["CapAdd"] == ["NET_BIND_SERVICE"]


# -- the install's keys ------------------------------------------------------------------------

def test_keys_made_once_0600_and_pinned(tmp_path: Path) -> None:
    first = ensure_install_keys(tmp_path, (ED25519,))
    host_key = tmp_path / "ssh" / "ssh_host_ed25519_key"
    for path in (host_key, tmp_path / "ssh" / "authorized_keys", first.client_key, first.known_hosts):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (tmp_path / "ssh", tmp_path / "ssh-client"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = host_key.read_bytes()
    second = ensure_install_keys(tmp_path, ())
    assert host_key.read_bytes() == before and second.pinned_host_key == first.pinned_host_key
    pinned = asyncssh.read_private_key(str(host_key)).export_public_key().decode().split()[:2]
    assert first.pinned_host_key.split() == pinned
    authorized = (tmp_path / "ssh" / "authorized_keys").read_text().splitlines()
    client_public = Path(f"{first.client_key}.pub").read_text().split()[:2]
    assert [line.split()[:2] for line in authorized] == [client_public]  # the user's key is gone again
    assert not (tmp_path / "ssh" / "id_ed25519").exists()  # the client key is never in the mounted folder


def test_a_replaced_host_key_is_not_re_pinned(tmp_path: Path) -> None:
    first = ensure_install_keys(tmp_path, ())
    host_key = tmp_path / "ssh" / "ssh_host_ed25519_key"
    host_key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    assert ensure_install_keys(tmp_path, ()).pinned_host_key == first.pinned_host_key


def test_status_file_round_trip_and_no_symlinks(tmp_path: Path) -> None:
    folder = status_folder(tmp_path)
    folder.mkdir()
    record = plan.status_record(8884, plan.ProbeResult(True, 3.14159), "2025-01-01T00:00:00+00:00")
    import json

    replace_atomically(folder / "c.json", json.dumps(record).encode(), 0o600)
    assert read_status(tmp_path, "c", 8884) == {"port": 8884, "reachable": True, "latency_ms": 3.1,
                                               "checked_at": "2025-01-01T00:00:00+00:00", "error": None}
    os.symlink(folder / "c.json", folder / "d.json")
    assert read_status(tmp_path, "d", 1)["reachable"] is None


# -- the probe's judgement -----------------------------------------------------------------------

UP, DOWN = plan.ProbeResult(True, 2.0), plan.ProbeResult(False, error="connection refused")
MISMATCH = plan.ProbeResult(False, error="host key mismatch", host_key_mismatch=True)


def test_one_notice_per_change_never_a_stream() -> None:
    health, notices = plan.Health.STARTING, []
    timeline = [(DOWN, 0.1), (DOWN, 1), (UP, 2), (UP, 17), (DOWN, 32), (DOWN, 47), (DOWN, 107), (UP, 167),
                (MISMATCH, 182), (MISMATCH, 197), (DOWN, 212), (UP, 227)]
    for result, elapsed in timeline:
        health, message = plan.judge(health, result, elapsed)
        notices.append(message)
    said = [n for n in notices if n]
    assert len(said) == 4
    assert said[0].startswith("SSH: unreachable (connection refused)") and said[1] == "SSH: reachable again"
    assert "does NOT match" in said[2] and said[3] == "SSH: reachable again"


def test_never_up_is_said_once_after_the_grace() -> None:
    health, said = plan.Health.STARTING, []
    for elapsed in (0.2, 5, 29, 31, 60, 120):
        health, message = plan.judge(health, DOWN, elapsed)
        said += [message] if message else []
    assert len(said) == 1 and health == plan.Health.DOWN


def test_delays_fast_while_starting_interval_when_up_backoff_when_down() -> None:
    assert plan.next_delay(plan.Health.STARTING, 0, 15) == plan.FIRST_RETRY_SECONDS
    assert plan.next_delay(plan.Health.STARTING, 0.4, 15) == 0.8
    assert plan.next_delay(plan.Health.STARTING, 10, 15) == 15
    assert plan.next_delay(plan.Health.UP, 0.2, 15) == 15
    delays, delay = [], 15.0
    for _ in range(5):
        delay = plan.next_delay(plan.Health.DOWN, delay, 15)
        delays.append(delay)
    assert delays == [30, 60, 60, 60, 60]


# -- the probe against a real (asyncssh) server ---------------------------------------------------

@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_probe_verifies_the_pinned_host_key(anyio_backend: str) -> None:
    from supervisor.tasks.ssh_probe import probe

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return username == "agent" and key.export_public_key() == client_key.export_public_key()

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        process.exit(0)

    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key], server_factory=Server,
                                   process_factory=handle)
    port = server.sockets[0].getsockname()[1]
    try:
        good = await probe(port, "agent", client_key, host_key.convert_to_public())
        assert good.reachable and good.latency_ms and good.error is None
        other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
        bad = await probe(port, "agent", client_key, other)
        assert not bad.reachable and bad.host_key_mismatch and "host key mismatch" in (bad.error or "")
        refused = await probe(port, "root", client_key, host_key.convert_to_public())
        assert not refused.reachable and not refused.host_key_mismatch
    finally:
        server.close()
        await server.wait_closed()
    closed = await probe(port, "agent", client_key, host_key.convert_to_public(), timeout=5)
    assert not closed.reachable and closed.error
    await anyio.sleep(0)
