"""`llm-docker init --yes …flags` as a script runs it: a real process, a throw-away home, no Docker
(`--no-build` everywhere: the real image is never built here)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from testbed.processes import command, launcher_env, run

PASSWORD = "builder-password-for-tests-0001"
ANTHROPIC = "sk-ant-api03-testkey-000000000000000001"
OPENAI = "sk-proj-testkey-000000000000000002"


def public_key(comment: str, seed: int = 1) -> str:
    """A syntactically real ed25519 public key line (its base64 encodes the type)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def init(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`llm-docker init ARGS` with stdin a pipe (no terminal), HOME = `home`."""
    return subprocess.run(command("llm-docker", "init", *args), cwd=home, env=launcher_env(home, **env),
                          capture_output=True, text=True, timeout=120)


def state(home: Path) -> Path:
    return home / ".llm-docker"


def files(home: Path) -> dict[str, str]:
    folder = state(home)
    return {path.name: path.read_text() for path in sorted(folder.iterdir()) if path.is_file()} if folder.exists() \
        else {}


@pytest.fixture
def workspace(user_home: Path) -> Path:
    folder = user_home / "Projects" / "ai"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def key_file(user_home: Path) -> Path:
    path = user_home / "keys" / "laptop.pub"
    path.parent.mkdir()
    path.write_text(public_key("me@laptop") + "\n")
    return path


def flags(workspace: Path, key_file: Path) -> list[str]:
    """Every wizard question answered on the command line (the keys come from the environment)."""
    return ["--yes", "--no-build", "--workspace", str(workspace), "--secrets-from-env",
            "--anthropic-base-url", "https://llm.example.org/anthropic", "--openai-base-url", "none",
            "--ssh", "--ssh-key", str(key_file), "--ssh-host-port", "9000",
            "--builder-api-password", PASSWORD, "--no-builder-api-autostart",
            "--internet", "--no-lan", "--egress-allow", "@npm github.com", "--host-ports", "5432",
            "--tmux-helpers", "vanilla,team", "--devpacks", "cpp,media"]


def expected_conf(workspace: Path) -> str:
    return f"""\
# llm-docker settings (`llm-docker config` shows every setting and where its value comes from)

# Host folder mirrored read-only for all projects; empty = off
WORKSPACE_DIR={workspace}
# provider endpoint (forwarded to the agent)
ANTHROPIC_BASE_URL=https://llm.example.org/anthropic
# Run sshd in every slot's container (key-only, as the container's user)
LLM_DOCKER_SSH_ENABLED=true
# Host port for slot 1 (slot N uses +N-1; the next free one within +50 when taken), bound to 127.0.0.1
LLM_DOCKER_SSH_HOST_PORT=9000
# Start builder-api with every launch (like -a)
BUILDER_API_AUTOSTART=false
# false = the internet is closed; the LAN (RFC1918/ULA) stays open unless LAN_ACCESS=false
INTERNET_ACCESS=true
# false = the LAN (10/8, 172.16/12, 192.168/16, fc00::/7) is closed too
LAN_ACCESS=false
# Space-separated domains (*.npmjs.org), IPs and CIDRs: when set, the internet is reachable only there; presets \
@agent @npm @pypi @debian @github @registries
EGRESS_ALLOW='@npm github.com'
# Host TCP ports the agent may reach as host.docker.internal:PORT (builder-api's is added with -a/-ab); nothing \
else of the host is reachable
HOST_PORTS=5432
""" + "".join(f"# {doc}\n{key}={value}\n" for key, value, doc in (
        ("INSTALL_TMUX_VANILLA", "true", "Build: tmux (needed by every -t* flag)"),
        ("INSTALL_TMUX_TEAM", "true", "Build: team-mode helpers (-tt)"),
        ("INSTALL_TMUX_RECON", "false", "Build: recon dashboard (-tr)"),
        ("INSTALL_TMUX_CODEMAN", "false", "Build: Codeman web UI (-tc)"),
        ("INSTALL_TMUX_CLAUDE", "false", "Build: claude-tmux popup (-tcl)"),
        ("INSTALL_SECURITY", "false", "Build: pen-test toolkit"),
        ("INSTALL_RUBY", "false", "Build: Ruby"),
        ("INSTALL_CPP", "true", "Build: make + cmake + gcc"),
        ("INSTALL_LLVM_CLANG", "false", "Build: LLVM/Clang toolchain"),
        ("INSTALL_NS", "false", "Build: NativeScript CLI"),
        ("INSTALL_MEDIA", "true", "Build: ffmpeg + sox + yt-dlp"),
        ("INSTALL_QUAKE", "false", "Build: SDL2 toolchain for the Quake port"),
        ("INSTALL_BROWSING", "false", "Build: headless Chromium")))


EXPECTED_ENV = f"""\
# llm-docker secrets — keep this file private (chmod 600)

# Anthropic API key (skip if you use /login)
ANTHROPIC_API_KEY={ANTHROPIC}
# OpenAI API key
OPENAI_API_KEY={OPENAI}
# SSH public keys allowed into the slots, one per line or separated by \\n
LLM_DOCKER_SSH_AUTHORIZED_KEYS='{public_key("me@laptop")}'
# Shared builder-api password
BUILDER_API_PASSWORD={PASSWORD}
"""


def test_flags_write_exactly_the_expected_files_private_and_loadable(user_home: Path, workspace: Path,
                                                                      key_file: Path) -> None:
    result = init(user_home, *flags(workspace, key_file), ANTHROPIC_API_KEY=ANTHROPIC, OPENAI_API_KEY=OPENAI)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert files(user_home) == {".env": EXPECTED_ENV, "llm-docker.conf": expected_conf(workspace)}
    assert stat.S_IMODE(state(user_home).stat().st_mode) == 0o700
    for name in (".env", "llm-docker.conf"):
        assert stat.S_IMODE((state(user_home) / name).stat().st_mode) == 0o600
        for line in (state(user_home) / name).read_text().splitlines():
            assert line.startswith("#") or not line or not line.endswith("=")  # never an empty value
    assert ANTHROPIC not in result.stdout and PASSWORD not in result.stdout
    # what a launch loads: every value from the files (the environment here holds none of them)
    shown = run("llm-docker", "config", "--json", cwd=user_home, home=user_home)
    rows = {row["key"]: row for row in json.loads(shown.stdout)["settings"]}
    assert rows["WORKSPACE_DIR"]["value"] == str(workspace)
    assert rows["BUILDER_API_PASSWORD"]["value"] == "(set, masked)"
    assert rows["LLM_DOCKER_SSH_AUTHORIZED_KEYS"]["source"].endswith(".env:8")
    assert rows["INSTALL_MEDIA"]["source"].endswith("llm-docker.conf:42")


def test_a_rerun_keeps_every_value(user_home: Path, workspace: Path, key_file: Path) -> None:
    assert init(user_home, *flags(workspace, key_file), ANTHROPIC_API_KEY=ANTHROPIC,
                OPENAI_API_KEY=OPENAI).returncode == 0
    first = files(user_home)
    again = init(user_home, "--yes", "--no-build")
    assert again.returncode == 0, again.stderr
    assert files(user_home) == first
    # one answer changed: only its line changes
    changed = init(user_home, "--yes", "--no-build", "--host-ports", "5432 8080")
    assert changed.returncode == 0, changed.stderr
    assert files(user_home)["llm-docker.conf"] == first["llm-docker.conf"].replace(
        "HOST_PORTS=5432", "HOST_PORTS='5432 8080'")
    assert files(user_home)[".env"] == first[".env"]


def test_a_fresh_yes_generates_the_password_once_and_trusts_your_ed25519_key(user_home: Path) -> None:
    (user_home / ".ssh").mkdir()
    (user_home / ".ssh" / "id_ed25519.pub").write_text(public_key("me@host", seed=7) + "\n")
    (user_home / ".ssh" / "id_rsa.pub").write_text("not a key\n")
    result = init(user_home, "--yes", "--no-build")
    assert result.returncode == 0, result.stderr
    env = files(user_home)[".env"]
    password = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("BUILDER_API_PASSWORD="))
    assert len(password) == 32
    assert f"LLM_DOCKER_SSH_AUTHORIZED_KEYS='{public_key('me@host', seed=7)}'" in env
    assert "WORKSPACE_DIR" not in files(user_home)["llm-docker.conf"]  # no workspace: no line, not an empty one
    assert init(user_home, "--yes", "--no-build").returncode == 0
    assert files(user_home)[".env"] == env  # the generated password is now the current one: kept


def test_the_users_own_lines_are_kept(user_home: Path, workspace: Path) -> None:
    state(user_home).mkdir()
    (state(user_home) / "llm-docker.conf").write_text(
        "# my notes\nMEMORY_LIMIT=8g  # enough for the monorepo\nWORKSPACE_DIR=/old/place\n"
        "ZAI_API_KEY=zai-in-the-wrong-file-0123456789\n")
    (state(user_home) / ".env").write_text("# secrets\nCLAUDE_CODE_OAUTH_TOKEN=oauth-token-0123456789\n")
    (state(user_home) / ".env").chmod(0o644)
    result = init(user_home, "--yes", "--no-build", "--workspace", str(workspace), "--builder-api-password",
                  PASSWORD)
    assert result.returncode == 0, result.stderr
    conf, env = files(user_home)["llm-docker.conf"], files(user_home)[".env"]
    assert conf.startswith(f"# my notes\nMEMORY_LIMIT=8g  # enough for the monorepo\nWORKSPACE_DIR={workspace}\n")
    assert "ZAI_API_KEY" not in conf  # a secret belongs in .env: moved there
    assert env.startswith("# secrets\nCLAUDE_CODE_OAUTH_TOKEN=oauth-token-0123456789\n")
    assert "ZAI_API_KEY=zai-in-the-wrong-file-0123456789\n" in env
    assert stat.S_IMODE((state(user_home) / ".env").stat().st_mode) == 0o600


BAD = [
    (["--workspace", "/tmp"], "WORKSPACE_DIR '/tmp' is a system folder"),
    (["--workspace", "relative/ai"], "WORKSPACE_DIR 'relative/ai' is relative"),
    (["--host-ports", "70000"], "HOST_PORTS: expected TCP ports"),
    (["--set", "PIDS_LIMIT=3"], "PIDS_LIMIT: must be between 16 and 4194304, got 3"),
    (["--set", "NETWORK_MODE=bridge"], "NETWORK_MODE: expected one of gateway, host"),
    (["--set", "NOT_A_SETTING=1"], "unknown setting NOT_A_SETTING"),
    (["--builder-api-password", "YOUR_LLM_DOCKER_API_PASSWORD"], "looks like a placeholder"),
    (["--anthropic-base-url", "ftp://example.org"], "ANTHROPIC_BASE_URL: expected an http(s) URL"),
    (["--egress-allow", "not_a_domain"], "EGRESS_ALLOW: 'not_a_domain' is neither"),
    (["--tmux-helpers", "vanilla,php"], "unknown choice 'php'"),
    (["--ssh-key", "/etc/hostname"], "--ssh-key /etc/hostname: "),
    (["--set", "LLM_DOCKER_SSH_AUTHORIZED_KEYS=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host"],
     "LLM_DOCKER_SSH_AUTHORIZED_KEYS: the key (ssh-ed25519) has no valid key data"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(args)[:40] for args, _ in BAD])
def test_a_bad_value_is_one_line_exit_2_and_nothing_written(user_home: Path, args: list[str], message: str) -> None:
    fresh = init(user_home, "--yes", "--no-build", *args)
    assert fresh.returncode == 2
    assert fresh.stderr.count("\n") == 1 and fresh.stderr.startswith("llm-docker init: ")
    assert message in fresh.stderr
    assert not state(user_home).exists()  # not even the folder
    assert init(user_home, "--yes", "--no-build", "--builder-api-password", PASSWORD).returncode == 0
    before = files(user_home)
    again = init(user_home, "--yes", "--no-build", *args)
    assert again.returncode == 2 and message in again.stderr
    assert files(user_home) == before


def test_without_a_terminal_and_without_yes_it_refuses(user_home: Path) -> None:
    result = init(user_home, "--no-build", "--workspace", "none")
    assert result.returncode == 2
    assert result.stderr == ("llm-docker init: init asks questions and needs a terminal — run it with --yes "
                             "(and flags) from a script\n")
    assert not state(user_home).exists()


def test_a_symlinked_config_file_is_refused_not_replaced(user_home: Path, tmp_path: Path) -> None:
    state(user_home).mkdir()
    target = tmp_path / "dotfiles-conf"
    target.write_text("DEBUG=true\n")
    os.symlink(target, state(user_home) / "llm-docker.conf")
    result = init(user_home, "--yes", "--no-build")
    assert result.returncode == 2 and "is a symlink" in result.stderr
    assert (state(user_home) / "llm-docker.conf").is_symlink() and target.read_text() == "DEBUG=true\n"
    assert not (state(user_home) / ".env").exists()


def test_a_broken_existing_file_is_one_line_and_left_alone(user_home: Path) -> None:
    state(user_home).mkdir()
    (state(user_home) / ".env").write_text("ANTHROPIC_API_KEY='unterminated\n")
    result = init(user_home, "--yes", "--no-build")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert ".env:1: ANTHROPIC_API_KEY: missing closing '" in result.stderr
    assert files(user_home) == {".env": "ANTHROPIC_API_KEY='unterminated\n"}
