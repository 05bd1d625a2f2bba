"""`cld` / `ocd` as the user runs them: real processes, real file system, no Docker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.processes import run_offline

REPO = Path(__file__).parents[2]


run = run_offline  # (testbed.processes: shared with tests/launch)


def tree_snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("tool", ["cld", "ocd"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_needs_no_engine_and_loads_nothing_heavy(tool: str, flag: str, project: Path, user_home: Path) -> None:
    result = run([flag], cwd=project, home=user_home, tool=tool)
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: {tool} [DIRECTORY] [N]")
    assert result.stderr == ""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from cli.launchers import run_launcher; from launch.argv import Tool; import io;"
         "run_launcher(Tool.CLAUDE, ['-h'], stdout=io.StringIO());"
         "print(sorted(m for m in ('aiodocker', 'aiohttp', 'supervisor.launcher', 'asyncssh') if m in sys.modules))"],
        capture_output=True, text=True, cwd=REPO)
    assert probe.stdout.strip() == "[]"


def test_version(project: Path, user_home: Path) -> None:
    assert run(["--version"], cwd=project, home=user_home).stdout.startswith("cld (llm-docker) ")


def test_dry_run_acceptance_cld(in_project: Path, user_home: Path) -> None:
    result = run(["--dry-run", "--slot", "2", "--", "--permission-mode", "plan"], cwd=in_project, home=user_home)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"name", "create"}
    create = document["create"]
    assert create["Cmd"][0] == "claude" and create["Cmd"][-2:] == ["--permission-mode", "plan"]
    host = create["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Init"] is True
    mount = {"Type": "bind", "Source": str(in_project), "Target": "/root/Projects/app", "ReadOnly": False}
    assert mount in host["Mounts"]
    assert not any("docker.sock" in json.dumps(m) for m in host["Mounts"])
    assert not any(item.startswith("TMUX") for item in create["Env"])
    assert document["name"].startswith("llm-docker-claude-app-s2-")
    # a dry run creates nothing, not even the state folder
    assert not (user_home / ".llm-docker").exists()


def test_dry_run_acceptance_ocd(in_project: Path, user_home: Path) -> None:
    result = run(["--dry-run", "--", "--model", "x"], cwd=in_project, home=user_home, tool="ocd")
    assert result.returncode == 0, result.stderr
    create = json.loads(result.stdout)["create"]
    assert create["Cmd"] == ["opencode", "--model", "x"]
    assert create["HostConfig"]["CapDrop"] == ["ALL"] and create["HostConfig"]["Init"] is True
    assert not any(item.startswith("TMUX") for item in create["Env"])


def test_dry_run_of_several_windows_lists_one_spec_per_slot(in_project: Path, user_home: Path) -> None:
    result = run(["--dry-run", "3", "-c"], cwd=in_project, home=user_home)
    specs = json.loads(result.stdout)
    assert [s["create"]["Labels"]["io.llm-docker.slot"] for s in specs] == ["1", "2", "3"]
    assert len({s["name"] for s in specs}) == 3


BAD_ARGV = [
    ["--slot"], ["--slot", "0"], ["--slot", "x"], ["-c", "not-a-uuid"], ["--bogus"], ["-t", "-tt"],
    ["-d"], ["nonexistent-word"], ["-tt", "9"], ["0"],
]


@pytest.mark.parametrize("argv", BAD_ARGV, ids=" ".join)
def test_bad_flags_exit_2_with_one_line_and_leave_nothing(argv: list[str], project: Path, user_home: Path) -> None:
    before = tree_snapshot(user_home)
    result = run(argv, cwd=project, home=user_home)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cld: ")
    assert tree_snapshot(user_home) == before


def test_ocd_refuses_cld_only_flags(project: Path, user_home: Path) -> None:
    result = run(["-tcl"], cwd=project, home=user_home, tool="ocd")
    assert result.returncode == 2
    assert result.stderr == "ocd: -tcl is only available in cld (OpenCode has no such mode)\n"


@pytest.mark.parametrize(("conf", "where"), [
    ("SANDBOX_ENABLED=perhaps\n", "llm-docker.conf:1: SANDBOX_ENABLED"),
    ("WORKSPACE_DIR=/\n", "WORKSPACE_DIR '/' is a system folder"),
    ("WORKSPACE_DIR=relative/ws/dir\n", "WORKSPACE_DIR 'relative/ws/dir' is relative"),
    ("DOCKER_DIR=/root/.claude\n", "DOCKER_DIR '/root/.claude' collides"),
])
def test_bad_config_exits_2_and_leaves_nothing(conf: str, where: str, project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text(conf)
    before = tree_snapshot(user_home)
    result = run(["--dry-run"], cwd=project, home=user_home)
    assert result.returncode == 2
    assert where in result.stderr and result.stderr.count("\n") == 1
    assert tree_snapshot(user_home) == before


def test_a_setting_that_only_fails_for_this_launch_is_one_line_and_exit_2(project: Path, user_home: Path) -> None:
    """Found while planning (not when the supervisor builds the slot's spec): nothing written."""
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text("LLM_DOCKER_SSH_HOST_PORT=65535\n")
    before = tree_snapshot(user_home)
    result = run(["--slot", "3"], cwd=project, home=user_home)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "cld: SSH host port 65537 for slot 3 is above 65535 — lower LLM_DOCKER_SSH_HOST_PORT\n"
    assert tree_snapshot(user_home) == before


@pytest.mark.parametrize("where", ["home", "shallow", "state"])
def test_dangerous_project_folders_are_refused(where: str, user_home: Path, tmp_path: Path) -> None:
    folder = {"home": user_home, "shallow": Path("/tmp"), "state": user_home / ".llm-docker" / "x"}[where]
    folder.mkdir(parents=True, exist_ok=True)
    result = run(["--dry-run"], cwd=folder, home=user_home)
    assert result.returncode == 2
    assert "project folder" in result.stderr and "—" in result.stderr


def test_home_that_is_a_git_repository_is_never_the_project(user_home: Path, project: Path) -> None:
    (user_home / ".git").mkdir()  # dotfiles under version control
    result = run(["--dry-run"], cwd=project, home=user_home)
    assert result.returncode == 2
    assert "is your home directory" in result.stderr


def test_directory_argument_and_workspace(user_home: Path, tmp_path: Path) -> None:
    workspace = user_home / "Projects" / "ai"
    (workspace / "foo" / "sub").mkdir(parents=True)
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text("WORKSPACE_DIR=~/Projects/ai\n")
    result = run(["--dry-run", str(workspace / "foo" / "sub")], cwd=tmp_path, home=user_home)
    assert result.returncode == 0, result.stderr
    create = json.loads(result.stdout)["create"]
    assert create["WorkingDir"] == "/root/Projects/foo/sub"
    mounts = {m["Target"]: m for m in create["HostConfig"]["Mounts"]}
    assert mounts["/root/Projects/ai"]["ReadOnly"] is True
    assert mounts["/root/Projects/foo"]["ReadOnly"] is False


def test_unknown_config_key_warns_but_launches(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text("INSTALL_RUBBY=true\n")  # a cage setting's near-miss: test_config
    result = run(["--dry-run"], cwd=project, home=user_home)
    assert result.returncode == 0
    assert "warning" in result.stderr and "did you mean INSTALL_RUBY?" in result.stderr
