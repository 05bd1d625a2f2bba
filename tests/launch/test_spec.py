"""The container spec, built from hand-made host facts (no Docker, no file system)."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.argv import parse_argv
from launch.command import CLAUDE_MD_PROMPT
from launch.config import Config
from launch.spec import container_name
from launch.surface import Kind, SurfaceFacts
from launch.tools import Tool
from testbed.plans import NEW_SESSION as NEW, create_body, host_facts as facts, spec_of

UUID = "0b6f2c3e-8a1d-4e55-9f0a-1c2d3e4f5a6b"


spec = create_body  # (testbed.plans: shared with tests/launch/test_limits.py)


def env_of(body: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in body["Env"])


def test_claude_cmd_and_hardening() -> None:
    body = spec(Tool.CLAUDE, "--slot 2 -- --permission-mode plan")
    assert body["Cmd"] == ["claude", "--dangerously-skip-permissions", "--session-id", NEW,
                           "--permission-mode", "plan"]
    host = body["HostConfig"]
    assert host["Init"] is True
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == []
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert not any("docker.sock" in m["Source"] or "docker.sock" in m["Target"] for m in host["Mounts"])
    assert body["User"] == "1000:1000"
    assert body["Labels"]["io.llm-docker.slot"] == "2"
    assert body["Labels"]["io.llm-docker.launcher-pid"] == "4242"


def test_environment_is_an_allow_list() -> None:
    env = env_of(spec(Tool.CLAUDE, ""))
    assert not any(key.startswith("TMUX") for key in env)
    for leaked in ("AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "MY_TOOL_VAR"):
        assert leaked not in env
    assert env["TERM"] == "xterm-kitty"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8080"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HOME"] == "/root" and "PATH" not in env
    assert env["LLM_DOCKER_PROJECT"] == "app"
    forwarded = env_of(spec(Tool.CLAUDE, "", Config(forward_env="MY_TOOL_VAR")))
    assert forwarded["MY_TOOL_VAR"] == "v"


def test_secrets_reach_the_container_but_empty_ones_do_not() -> None:
    """Through the secrets file (`ContainerSpec.secrets`), never through the Env."""
    request = parse_argv(Tool.OPENCODE, [], cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    planned = spec_of(request, Config(zai_api_key="z-secret"), facts())
    assert planned.secrets == {"ZAI_API_KEY": "z-secret"}
    env = env_of(planned.create)
    assert "ZAI_API_KEY" not in env and "OPENAI_API_KEY" not in env
    assert env["LLM_DOCKER_SECRETS_FILE"] == "/run/llm-docker/secrets.env"


def test_opencode_cmd() -> None:
    assert spec(Tool.OPENCODE, "-- --model x")["Cmd"] == ["opencode", "--model", "x"]
    assert spec(Tool.OPENCODE, "-c")["Cmd"] == ["opencode", "--continue"]
    assert spec(Tool.OPENCODE, "-c ses_1")["Cmd"] == ["opencode", "--session", "ses_1"]
    assert spec(Tool.OPENCODE, "", boot_prompt="boot!")["Cmd"] == ["opencode", "--prompt", "boot!"]
    assert spec(Tool.OPENCODE, "-c -- run hi", boot_prompt="boot!")["Cmd"] == ["opencode", "--continue", "run", "hi"]
    assert spec(Tool.OPENCODE, "-- run hi", boot_prompt="boot!")["Cmd"] == ["opencode", "run", "hi"]


@pytest.mark.parametrize(("line", "changes", "cmd"), [
    ("-c", {}, ["claude", "--dangerously-skip-permissions", "--continue"]),
    (f"-c {UUID}", {}, ["claude", "--dangerously-skip-permissions", "--resume", UUID]),
    ("--safe", {}, ["claude", "--session-id", NEW]),
    ("", {"boot_prompt": "Do X."}, ["claude", "--dangerously-skip-permissions", "--session-id", NEW, "Do X."]),
    ("", {"has_claude_md": True}, ["claude", "--dangerously-skip-permissions", "--session-id", NEW, CLAUDE_MD_PROMPT]),
    ("-c", {"boot_prompt": "Do X."}, ["claude", "--dangerously-skip-permissions", "--continue"]),
    (f"-- --resume {UUID}", {"boot_prompt": "B"}, ["claude", "--dangerously-skip-permissions", "--resume", UUID]),
    ("-- -p hello", {"boot_prompt": "B"},
     ["claude", "--dangerously-skip-permissions", "--session-id", NEW, "-p", "hello"]),
    ("-c -- -p hello", {"boot_prompt": "B"}, ["claude", "--dangerously-skip-permissions", "--continue", "-p", "hello"]),
])
def test_claude_session_and_boot_prompt(line: str, changes: dict, cmd: list[str]) -> None:
    assert spec(Tool.CLAUDE, line, **changes)["Cmd"] == cmd


def test_danger_default_comes_from_config() -> None:
    assert "--dangerously-skip-permissions" not in spec(Tool.CLAUDE, "", Config(danger_mode=False))["Cmd"]
    assert "--dangerously-skip-permissions" in spec(Tool.CLAUDE, "--danger", Config(danger_mode=False))["Cmd"]


@pytest.mark.parametrize(("line", "cmd_start"), [
    ("-t", ["tmux", "new-session", "-A", "-s", "llm-docker", "claude"]),
    ("-tt", ["llm-docker-tmux", "team", "--layout", "lead3", "--", "claude"]),
    ("-tt 2", ["llm-docker-tmux", "team", "--layout", "pair", "--", "claude"]),
    ("-tt 3", ["llm-docker-tmux", "team", "--layout", "lead2", "--", "claude"]),
    ("-tt 4", ["llm-docker-tmux", "team", "--layout", "grid", "--", "claude"]),
    ("-tr", ["llm-docker-tmux", "recon"]),
    ("-tcl", ["llm-docker-tmux", "claude-tmux", "--", "claude"]),
])
def test_tmux_modes(line: str, cmd_start: list[str]) -> None:
    cmd = spec(Tool.CLAUDE, line)["Cmd"]
    assert cmd[:len(cmd_start)] == cmd_start
    if line == "-tr":
        assert cmd == cmd_start  # recon gets no claude argv (docs/upstream.md#tmux-dashboards)


def test_network_mode_host_is_the_old_behaviour() -> None:
    host = Config(network_mode="host", llm_docker_ssh_enabled=False)
    body = spec(Tool.CLAUDE, "", host)
    assert body["HostConfig"]["NetworkMode"] == "host"
    assert body["HostConfig"]["ExtraHosts"] == ["host.docker.internal:127.0.0.1"]
    body = spec(Tool.CLAUDE, "-tc", host)
    assert body["HostConfig"]["NetworkMode"] == "bridge"
    assert body["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    assert body["HostConfig"]["PortBindings"] == {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3000"}]}


def test_ssh_port_per_slot_on_loopback_with_no_capability() -> None:
    # (SSH's own spec tests: tests/test_ssh.py) bridge: published; sshd needs no capability
    body = spec(Tool.CLAUDE, "--slot 3 -tc", Config(llm_docker_ssh_enabled=True, network_mode="host"))
    assert body["HostConfig"]["PortBindings"]["2222/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8886"}]
    assert body["HostConfig"]["CapAdd"] == [] and body["HostConfig"]["CapDrop"] == ["ALL"]
    assert {"Type": "bind", "Source": "/home/u/.llm-docker/ssh", "Target": "/etc/ssh/keys",
            "ReadOnly": True} in body["HostConfig"]["Mounts"]


def test_by_default_the_agent_joins_its_gateway_which_publishes_its_ports() -> None:
    request = parse_argv(Tool.CLAUDE, ["-tc"], cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    planned = spec_of(request, Config(llm_docker_ssh_enabled=False), facts())
    assert planned.gateway is not None
    body, gateway = planned.create, planned.gateway.create
    assert body["HostConfig"]["NetworkMode"] == f"container:{planned.name}-gateway"
    assert "PortBindings" not in body["HostConfig"] and "ExtraHosts" not in body["HostConfig"]
    assert "Hostname" not in body and "ExposedPorts" not in body
    assert gateway["HostConfig"]["PortBindings"] == {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3000"}]}
    assert gateway["HostConfig"]["CapAdd"] == ["NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID"]
    assert gateway["Hostname"] == "llm-docker"
    assert "io.llm-docker.tool" not in gateway["Labels"]
    assert gateway["Labels"]["io.llm-docker.gateway-for"] == planned.name


def test_offline_and_unsandboxed() -> None:
    body = spec(Tool.CLAUDE, "", Config(internet_access=False, sandbox_enabled=False, network_mode="host"))
    assert body["HostConfig"]["NetworkMode"] == "llm-docker-offline"
    assert "CapDrop" not in body["HostConfig"] and "SecurityOpt" not in body["HostConfig"]
    assert body["HostConfig"]["CapAdd"] == ["SYS_PTRACE"]


def test_surface_pins_and_dotfile_mounts_are_read_only() -> None:
    surface = SurfaceFacts({".git": Kind.DIRECTORY, ".vscode": Kind.DIRECTORY, ".mcp.json": Kind.FILE,
                            ".claude": Kind.ABSENT, ".envrc": Kind.SYMLINK})
    body = spec(Tool.CLAUDE, "", surface=surface, dotfiles=(".tmux.conf",))
    mounts = {m["Target"]: m for m in body["HostConfig"]["Mounts"]}
    assert mounts["/root/Projects/app"]["ReadOnly"] is False
    for pinned in (".git", ".vscode", ".mcp.json"):
        assert mounts[f"/root/Projects/app/{pinned}"] == {
            "Type": "bind", "Source": f"/home/u/Projects/app/{pinned}", "Target": f"/root/Projects/app/{pinned}",
            "ReadOnly": True}
    # absent entries and symlinks cannot be pinned (a bind would follow the link): the tripwire watches them
    assert "/root/Projects/app/.claude" not in mounts and "/root/Projects/app/.envrc" not in mounts
    assert mounts["/root/.tmux.conf"] == {"Type": "bind", "Source": "/home/u/.tmux.conf",
                                          "Target": "/root/.tmux.conf", "ReadOnly": True}


def test_commit_mode_pins_what_git_executes_and_keeps_git_its_own_mount() -> None:
    surface = SurfaceFacts({".git": Kind.DIRECTORY, ".git/config": Kind.FILE, ".git/hooks": Kind.ABSENT,
                            ".git/info": Kind.DIRECTORY, ".git/modules": Kind.ABSENT})
    body = spec(Tool.CLAUDE, "", Config(agent_git_commit=True), surface=surface)
    mounts = {m["Target"]: m["ReadOnly"] for m in body["HostConfig"]["Mounts"]}
    assert mounts["/root/Projects/app/.git"] is False  # its own mount: it cannot be moved away
    assert mounts["/root/Projects/app/.git/config"] is True
    assert mounts["/root/Projects/app/.git/hooks"] is True  # created before the launch so it can be pinned
    assert mounts["/root/Projects/app/.git/info"] is True


def test_agent_state_is_per_project() -> None:
    first = spec_of(parse_argv(Tool.CLAUDE, [], cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False),
                    Config(), facts())
    other = spec_of(parse_argv(Tool.CLAUDE, [], cwd=Path("/home/u/Work/app"), is_dir=lambda p: False),
                    Config(), facts(launch_dir=Path("/home/u/Work/app")))
    sources = {m.target: m.source for m in first.mounts}
    assert sources["/root/.claude"] == first.project_home / "claude/.claude"
    assert first.project_home.parent == Path("/home/u/.llm-docker/projects")
    assert first.project_home.name.startswith("app-")
    assert first.project_home != other.project_home  # same folder name, different project


def test_image_and_name() -> None:
    assert spec(Tool.OPENCODE, "")["Image"] == "llm-docker-opencode:latest"
    assert spec(Tool.OPENCODE, "", Config(llm_docker_image="mine:1"))["Image"] == "mine:1"
    assert container_name(Tool.CLAUDE, "app", 2, "deadbeef99") == "llm-docker-claude-app-s2-deadbeef"
    assert container_name(Tool.OPENCODE, "app", None, "deadbeef99") == "llm-docker-opencode-app-deadbeef"


def test_tty_follows_stdin() -> None:
    assert spec(Tool.CLAUDE, "", stdin_tty=False)["Tty"] is False
    assert spec(Tool.CLAUDE, "")["Tty"] is True


def test_containers_carry_upstreams_project_label(in_project: Path, user_home: Path) -> None:
    """builder-api's `{{container}}` (and existing tooling) find the container by it."""
    from launch.argv import LaunchRequest
    from launch.plan import plan_launch, slot_specs
    from launch.tools import Tool

    plan = plan_launch(LaunchRequest(Tool.CLAUDE), environ={}, cwd=in_project, user_home=user_home)
    labels = slot_specs(plan)[0].create["Labels"]
    assert labels["llm-docker-project"] == labels["io.llm-docker.project"] == plan.project.token


def test_the_users_shared_agent_config_is_read_only_in_every_project() -> None:
    shared = ("claude/settings.json", "claude/commands", "opencode/opencode.json")
    claude = spec_of(parse_argv(Tool.CLAUDE, [], cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False),
                     Config(), facts(shared_config=shared))
    mounts = {m.target: m for m in claude.mounts}
    assert mounts["/root/.claude/settings.json"].source == Path("/home/u/.llm-docker/shared/claude/settings.json")
    assert mounts["/root/.claude/settings.json"].read_only and mounts["/root/.claude/commands"].read_only
    assert "/root/.claude/CLAUDE.md" not in mounts  # only what the user has
    opencode = spec(Tool.OPENCODE, "", shared_config=shared)
    assert "OPENCODE_CONFIG=/etc/llm-docker-shared/opencode.json" in opencode["Env"]
    assert {m["Target"]: m["ReadOnly"] for m in opencode["HostConfig"]["Mounts"]}[
        "/etc/llm-docker-shared/opencode.json"] is True
    assert not any(e.startswith("OPENCODE_CONFIG=") for e in spec(Tool.OPENCODE, "")["Env"])
