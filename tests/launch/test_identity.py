"""Project identity (pure functions), with upstream's verified examples; the mounts are
`test_mounts.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.hostfacts import find_git_toplevel
from launch.identity import (
    ProjectIdentity,
    claude_session_dir_name,
    project_identity,
    project_root,
    project_token,
)

WS = Path("/h/Projects/ai")


@pytest.mark.parametrize(("cwd", "workspace", "toplevel", "root"), [
    (Path("/h/work/gizmo"), None, None, Path("/h/work/gizmo")),
    (Path("/h/work/gizmo/src"), None, Path("/h/work/gizmo"), Path("/h/work/gizmo")),
    (WS / "foo" / "sub", WS, None, WS / "foo"),
    (WS, WS, None, WS),
    (WS / "foo" / "sub", WS, WS / "foo", WS / "foo"),
    # a repository ABOVE the workspace must not become the writable root (docs/upstream.md#repo-above-workspace)
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


def test_git_toplevel_found_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    assert find_git_toplevel(root / "src") == root


def test_identity_is_the_root_and_its_token() -> None:
    assert project_identity(WS / "my app" / "sub", WS, None) == ProjectIdentity(WS / "my app", "my-app")
    assert project_identity(Path("/h/x/y"), None, Path("/h/x")) == ProjectIdentity(Path("/h/x"), "x")
