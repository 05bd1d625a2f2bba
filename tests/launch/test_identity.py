"""Project identity and mounts (pure functions), with upstream's verified examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.hostfacts import find_git_toplevel
from launch.identity import (
    Mount,
    claude_session_dir_name,
    persistence_mounts,
    project_layout,
    project_root,
    project_state_home,
    project_token,
)
from launch.tools import Tool

WS = Path("/h/Projects/ai")
DD = "/root/Projects"


@pytest.mark.parametrize(("cwd", "workspace", "toplevel", "root"), [
    (Path("/h/work/gizmo"), None, None, Path("/h/work/gizmo")),
    (Path("/h/work/gizmo/src"), None, Path("/h/work/gizmo"), Path("/h/work/gizmo")),
    (WS / "foo" / "sub", WS, None, WS / "foo"),
    (WS, WS, None, WS),
    (WS / "foo" / "sub", WS, WS / "foo", WS / "foo"),
    # upstream B25: a repository ABOVE the workspace must not become the writable root
    (WS / "foo" / "sub", WS, Path("/h/Projects"), WS / "foo"),
    (Path("/h/elsewhere/x"), WS, Path("/h/elsewhere"), Path("/h/elsewhere")),
])
def test_project_root(cwd: Path, workspace: Path | None, toplevel: Path | None, root: Path) -> None:
    assert project_root(cwd, workspace, toplevel) == root


@pytest.mark.parametrize(("name", "token"), [
    ("gizmo", "gizmo"), ("bar_baz.x", "bar_baz.x"), ("my app", "my-app"), ("-x-", "x"),
    ("ünï", "n"), ("a b/", "a-b"), ("@@@", "-"), ("", "project"),
])
def test_project_token(name: str, token: str) -> None:
    assert project_token(Path("/h") / name if name else Path("/")) == token


@pytest.mark.parametrize(("workdir", "folder"), [
    ("/root/Projects/bar_baz.x", "-root-Projects-bar-baz-x"),  # upstream's verified example
    ("/root/Projects/gizmo", "-root-Projects-gizmo"),
    ("/root/Projects/my app/sub", "-root-Projects-my-app-sub"),
])
def test_claude_session_dir_name(workdir: str, folder: str) -> None:
    assert claude_session_dir_name(workdir) == folder


def test_layout_outside_workspace() -> None:
    layout = project_layout(Path("/h/work/gizmo/src"), WS, DD, Path("/h/work/gizmo"))
    assert layout.workdir == "/root/Projects/gizmo/src"
    assert layout.mounts == (Mount(Path("/h/work/gizmo"), "/root/Projects/gizmo"),)
    assert not layout.workspace_read_only


def test_layout_inside_workspace_is_read_only_except_the_project() -> None:
    layout = project_layout(WS / "foo" / "sub", WS, DD, None)
    assert layout.workdir == "/root/Projects/foo/sub"
    assert layout.mounts == (Mount(WS, "/root/Projects/ai", read_only=True),
                             Mount(WS / "foo", "/root/Projects/foo"))
    assert layout.workspace_read_only


def test_layout_at_workspace_root_is_writable() -> None:
    layout = project_layout(WS, WS, DD, None)
    assert layout.workdir == "/root/Projects/ai"
    assert layout.mounts == (Mount(WS, "/root/Projects/ai"),)


def test_layout_token_equal_to_workspace_name_does_not_duplicate_the_mount_point() -> None:
    # upstream B23: a project named like the workspace gave Docker a duplicate mount point
    layout = project_layout(WS / "x" / "ai", WS, DD, WS / "x" / "ai")
    targets = [m.target for m in layout.mounts]
    assert len(set(targets)) == len(targets)
    assert layout.workdir == "/root/Projects/ai/x/ai"


def test_persistence_mounts_are_narrow() -> None:
    home = Path("/h/.llm-docker")
    project = project_state_home(home, Path("/h/Projects/app"))
    assert [m.target for m in persistence_mounts(Tool.CLAUDE, home, project, ssh=False)] == [
        "/root/.claude", "/root/.config", "/root/.claude.json"]
    opencode = persistence_mounts(Tool.OPENCODE, home, project, ssh=True)
    assert [m.target for m in opencode] == [
        "/root/.config/opencode", "/root/.local/share/opencode", "/root/.cache/opencode", "/etc/ssh/keys"]
    assert all(m.source.is_relative_to(project) for m in opencode[:3])
    assert opencode[3].source == home / "ssh"  # the install's SSH keys are shared, the agents' state is not


def test_git_toplevel_found_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    assert find_git_toplevel(root / "src") == root
