"""Secrets reach the agent through a 0600 file in its run folder, never through the
container's Env (`docker inspect`) — and `--dry-run` masks them unless `--show-secrets`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from launch.argv import parse_argv
from launch.errors import UsageError
from launch.secrets import is_secret, parse, render
from launch.tools import Tool
from testbed.processes import field, project_containers, run_offline as run_cli, wait_until
from testbed.unprivileged import User

SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-SECRET-1", "BUILDER_API_PASSWORD": "hunter2-SECRET-2",
           "ANTHROPIC_AUTH_TOKEN": "tok-SECRET-3", "GITHUB_TOKEN": "ghp-SECRET-4"}
#: Real-shaped public keys: LLM_DOCKER_SSH_AUTHORIZED_KEYS is checked (launch.ssh).
KEY_ONE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIODd131B7kQXeafogKyfxcQSAhPKyML1hNn4u7c43eP4 one"
KEY_TWO = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIZlfPBAL1H/UAD9etf8f9MaySd9VynpSz6mTMPixWR8 two"
DOTENV = ("ANTHROPIC_API_KEY=sk-ant-SECRET-1\nBUILDER_API_PASSWORD=hunter2-SECRET-2\n"
          f"ANTHROPIC_AUTH_TOKEN=tok-SECRET-3\nLLM_DOCKER_SSH_AUTHORIZED_KEYS=\"{KEY_ONE}\\n{KEY_TWO}\"\n")


@pytest.mark.parametrize(("name", "secret"), [
    ("ANTHROPIC_API_KEY", True), ("OPENAI_API_KEY", True), ("ZAI_API_KEY", True), ("CODEMAN_PASSWORD", True),
    ("BUILDER_API_PASSWORD", True), ("ANTHROPIC_AUTH_TOKEN", True), ("CLAUDE_CODE_OAUTH_TOKEN", True),
    ("GITHUB_TOKEN", True), ("AWS_SECRET", True), ("LLM_DOCKER_SSH_AUTHORIZED_KEYS", True),
    ("ANTHROPIC_BASE_URL", False), ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", False), ("KEYBOARD", False),
    ("CODEMAN_USERNAME", False), ("BUILDER_API_PORT", False), ("TERM", False),
])
def test_which_names_are_secret(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_file_format_round_trips_any_value() -> None:
    values = {"A_KEY": "back\\slash\nnew line\r", "B_TOKEN": "$(rm -rf /) `id` %s = ;", "C_SECRET": "tail\n\n"}
    text = render(values)
    assert text.count("\n") == 3  # one line per secret, whatever the values hold
    assert parse(text) == values


def test_show_secrets_only_with_dry_run() -> None:
    with pytest.raises(UsageError, match="--show-secrets only goes with --dry-run"):
        parse_argv(Tool.CLAUDE, ["--show-secrets"], cwd=Path("/"), is_dir=lambda p: False)
    request = parse_argv(Tool.CLAUDE, ["--dry-run", "--show-secrets"], cwd=Path("/"), is_dir=lambda p: False)
    assert request.show_secrets and request.dry_run


def test_dry_run_masks_secrets_unless_asked(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / ".env").write_text(DOTENV)
    (state / ".env").chmod(0o600)
    (state / "llm-docker.conf").write_text("FORWARD_ENV=GITHUB_TOKEN\n")
    extra = {"GITHUB_TOKEN": "ghp-SECRET-4"}
    masked = run_cli(["--dry-run"], cwd=project, home=user_home, extra_env=extra)
    assert masked.returncode == 0, masked.stderr
    assert not [value for value in [*SECRETS.values(), KEY_ONE] if value in masked.stdout]
    document = json.loads(masked.stdout)
    assert document["secrets"] == dict.fromkeys(sorted([*SECRETS, "LLM_DOCKER_SSH_AUTHORIZED_KEYS"]), "***")
    env = dict(item.split("=", 1) for item in document["create"]["Env"])
    assert env["LLM_DOCKER_SECRETS_FILE"] == "/run/llm-docker/secrets.env"
    assert not set(env) & set(document["secrets"])
    shown = json.loads(run_cli(["--dry-run", "--show-secrets"], cwd=project, home=user_home, extra_env=extra).stdout)
    assert {key: shown["secrets"][key] for key in SECRETS} == SECRETS
    assert not [value for value in SECRETS.values() if value in json.dumps(shown["create"])]


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine_ready")
def test_a_running_container_keeps_its_secrets_out_of_inspect(user: User) -> None:
    user.write(user.state_home / ".env", DOTENV, mode=0o600)
    user.write(user.state_home / "llm-docker.conf",
               (user.state_home / "llm-docker.conf").read_text() + "FORWARD_ENV=GITHUB_TOKEN\n", mode=0o600)
    project = user.project()
    process = user.popen("cld", "--", "-p", "hi", "--fake-sh", "cat /run/llm-docker/secrets.env",
                         "--fake-sleep", "4", cwd=project, env={"GITHUB_TOKEN": "ghp-SECRET-4"},
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(project_containers(project)) == 1, timeout=60)
        container = project_containers(project)[0]
        inspect = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
        name = json.loads(inspect)[0]["Name"].lstrip("/")
        secrets_file = user.state_home / "runs" / name / "secrets.env"
        info = os.stat(secrets_file)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for value in SECRETS.values():
        assert value not in inspect
    assert KEY_ONE not in inspect
    assert "LLM_DOCKER_SECRETS_FILE=/run/llm-docker/secrets.env" in inspect
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o600, user.uid, user.gid)
    assert process.returncode == 0, stderr
    output = stdout.decode()
    assert field(output, "SH") == ["0"]  # the agent (the user's uid, no capabilities) read the file
    read = parse("".join(line + "\n" for line in output.splitlines() if "=" in line and ":" not in line.split("=")[0]))
    assert {key: read[key] for key in SECRETS} == SECRETS
    assert read["LLM_DOCKER_SSH_AUTHORIZED_KEYS"] == f"{KEY_ONE}\n{KEY_TWO}"
    assert not secrets_file.parent.exists()  # gone with the run folder
