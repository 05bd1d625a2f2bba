"""Project identity: which folder a launch is about, its token, and where its own state lives.

Pure functions only; the file-system facts they need (resolved paths, the git toplevel) are
gathered by `launch.hostfacts` / `launch.project` and passed in. What the container mounts
for a project is `launch.mounts`.

The identity rules are upstream's, so sessions recorded by the bash version keep working:

* project root = the git toplevel, else the child of WORKSPACE_DIR the launch is in,
  else the launch directory itself — except that a git repository *above* the workspace
  never widens the mount (upstream made the whole parent repo writable;
  docs/upstream.md#repo-above-workspace);
* project token = the root's folder name with every character outside `[A-Za-z0-9._-]`
  replaced by `-`;
* Claude's session folder of a workdir = the one normalisation in `claude_session_dir_name`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SESSION_DIR_UNSAFE = re.compile(r"[^A-Za-z0-9]")

#: Per-project agent state lives under `$LLM_DOCKER_HOME/projects/<key>/` (see `project_state_home`).
PROJECTS_FOLDER = "projects"


@dataclasses.dataclass(frozen=True)
class ProjectIdentity:
    """Which project a folder belongs to: what containers are labelled with and found by
    (`io.llm-docker.project`), so `attach`, `ssh` and a launch agree on it."""

    root: Path
    token: str


def project_identity(launch_dir: Path, workspace: Path | None, git_toplevel: Path | None) -> ProjectIdentity:
    """The identity of a launch from `launch_dir` (all paths resolved): computed once per
    launch, so the folder guarded, the folder mounted and the labels are the same one."""
    root = project_root(launch_dir, workspace, git_toplevel)
    return ProjectIdentity(root, project_token(root))


def project_root(cwd: Path, workspace: Path | None, git_toplevel: Path | None) -> Path:
    """The folder that is mounted read-write for a launch from `cwd` (all paths resolved)."""
    inside_workspace = workspace is not None and cwd.is_relative_to(workspace)
    if git_toplevel is not None and (workspace is None or not inside_workspace
                                     or git_toplevel.is_relative_to(workspace)):
        return git_toplevel
    if workspace is not None and inside_workspace:
        if cwd == workspace:
            return workspace
        return workspace / cwd.relative_to(workspace).parts[0]
    return cwd


def project_token(root: Path) -> str:
    """The folder name, made safe for container paths, names and labels."""
    token = _TOKEN_UNSAFE.sub("-", root.name)
    token = token.removeprefix("-").removesuffix("-")
    return token or "project"


def claude_session_dir_name(workdir: str) -> str:
    """Claude Code's folder name for a workdir's sessions under `~/.claude/projects/`.

    Claude replaces every character that is not a letter or digit with `-`, so
    `/root/Projects/bar_baz.x` becomes `-root-Projects-bar-baz-x`. This is the one
    normalisation used everywhere (upstream had two that disagreed; docs/upstream.md#session-dir-name).
    """
    return _SESSION_DIR_UNSAFE.sub("-", workdir)


def project_state_key(root: Path) -> str:
    """The folder name of a project's own agent state: readable token + a hash of the path,
    so two projects with the same folder name never share state."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return f"{project_token(root)}-{digest}"


def project_state_home(state_home: Path, root: Path | str) -> Path:
    """Where one project's agent state lives: `$LLM_DOCKER_HOME/projects/<key>/`.

    Claude's and OpenCode's folders (settings, hooks, commands, plugins, MCP servers, session
    history, caches) are per project: what an agent writes into its home in one project can
    never change what runs in another project's session.
    """
    return state_home / PROJECTS_FOLDER / project_state_key(Path(root))
