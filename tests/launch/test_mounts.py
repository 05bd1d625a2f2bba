"""The mounts of a launch (pure functions): the project and workspace folders, the tool's
state, with upstream's verified examples."""

from __future__ import annotations

from pathlib import Path

from launch.identity import project_identity, project_state_home
from launch.mounts import Mount, ProjectLayout, persistence_mounts, project_layout
from launch.tools import Tool

WS = Path("/h/Projects/ai")
DD = "/root/Projects"


def layout_of(cwd: Path, workspace: Path | None, toplevel: Path | None) -> ProjectLayout:
    return project_layout(cwd, workspace, DD, project_identity(cwd, workspace, toplevel))


def test_layout_outside_workspace() -> None:
    layout = layout_of(Path("/h/work/gizmo/src"), WS, Path("/h/work/gizmo"))
    assert layout.workdir == "/root/Projects/gizmo/src"
    assert layout.mounts == (Mount(Path("/h/work/gizmo"), "/root/Projects/gizmo"),)
    assert not layout.workspace_read_only


def test_layout_inside_workspace_is_read_only_except_the_project() -> None:
    layout = layout_of(WS / "foo" / "sub", WS, None)
    assert layout.workdir == "/root/Projects/foo/sub"
    assert layout.mounts == (Mount(WS, "/root/Projects/ai", read_only=True),
                             Mount(WS / "foo", "/root/Projects/foo"))
    assert layout.workspace_read_only


def test_layout_at_workspace_root_is_writable() -> None:
    layout = layout_of(WS, WS, None)
    assert layout.workdir == "/root/Projects/ai"
    assert layout.mounts == (Mount(WS, "/root/Projects/ai"),)


def test_layout_token_equal_to_workspace_name_does_not_duplicate_the_mount_point() -> None:
    # a project named like the workspace gave Docker a duplicate mount point upstream
    # (docs/upstream.md#workspace-named-project)
    layout = layout_of(WS / "x" / "ai", WS, WS / "x" / "ai")
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
