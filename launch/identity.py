"""Project identity and mounts: which host folders a launch mounts, where, and how.

Pure functions only; the file-system facts they need (resolved paths, the git toplevel,
which protected files exist) are gathered by `launch.hostfacts` and passed in.

The identity rules are upstream's, so sessions recorded by the bash version keep working:

* project root = the git toplevel, else the child of WORKSPACE_DIR the launch is in,
  else the launch directory itself — except that a git repository *above* the workspace
  never widens the mount (upstream bug B25 made the whole parent repo writable);
* project token = the root's folder name with every character outside `[A-Za-z0-9._-]`
  replaced by `-`;
* container workdir = `DOCKER_DIR/<token>/<path below the root>`, or the workspace mirror
  when launched at the workspace root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
from pathlib import Path, PurePosixPath

from launch.surface import Protection
from launch.tools import Tool

CONTAINER_HOME = "/root"

#: The user's own agent configuration for every project, kept in `$LLM_DOCKER_HOME/shared/`
#: and mounted READ-ONLY into each project's agent home: shared, but out of the agents' reach
#: (a mount point cannot be replaced, its content cannot change). Relative path -> target.
SHARED_FOLDER = "shared"
SHARED_CONFIG: dict[Tool, dict[str, str]] = {
    Tool.CLAUDE: {f"claude/{name}": f"{CONTAINER_HOME}/.claude/{name}"
                  for name in ("settings.json", "CLAUDE.md", "commands", "agents", "skills", "output-styles")},
    # OpenCode merges the file named by OPENCODE_CONFIG over its global config.
    Tool.OPENCODE: {"opencode/opencode.json": "/etc/llm-docker-shared/opencode.json"},
}
OPENCODE_SHARED_CONFIG = "/etc/llm-docker-shared/opencode.json"

#: Optional host dotfiles mounted read-only when they exist.
OPTIONAL_DOTFILES = (".tmux.conf", ".p10k.zsh")

_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SESSION_DIR_UNSAFE = re.compile(r"[^A-Za-z0-9]")


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount: host `source` at container `target`."""

    source: Path
    target: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class ProjectLayout:
    root: Path
    token: str
    workdir: str
    mounts: tuple[Mount, ...]
    workspace_read_only: bool


@dataclasses.dataclass(frozen=True)
class PersistencePath:
    """A folder (or file) of a project's state home that keeps a tool's state across containers."""

    relative: str
    target: str
    is_file: bool = False


PERSISTENCE: dict[Tool, tuple[PersistencePath, ...]] = {
    Tool.CLAUDE: (
        PersistencePath("claude/.claude", "/root/.claude"),
        PersistencePath("claude/.config", "/root/.config"),
        PersistencePath("claude/.claude.json", "/root/.claude.json", is_file=True),
    ),
    Tool.OPENCODE: (
        PersistencePath("opencode/.config/opencode", "/root/.config/opencode"),
        PersistencePath("opencode/.local/share/opencode", "/root/.local/share/opencode"),
        PersistencePath("opencode/.cache/opencode", "/root/.cache/opencode"),
    ),
}
SSH_KEYS = PersistencePath("ssh", "/etc/ssh/keys")

#: Per-project agent state lives under `$LLM_DOCKER_HOME/projects/<key>/` (see `project_state_home`).
PROJECTS_FOLDER = "projects"

#: Per-container folder for the hooks' events file (`runs/<container name>` on the host).
RUNS_FOLDER = "runs"
RUN_TARGET = "/run/llm-docker"
EVENTS_FILE = "events.jsonl"


def run_folder(state_home: Path, container_name: str) -> Path:
    return state_home / RUNS_FOLDER / container_name


def project_root(cwd: Path, workspace: Path | None, git_toplevel: Path | None) -> Path:
    """The folder that is mounted read-write for a launch from `cwd` (all paths resolved)."""
    inside_workspace = workspace is not None and cwd.is_relative_to(workspace)
    if git_toplevel is not None and (not inside_workspace or git_toplevel.is_relative_to(workspace)):  # type: ignore[arg-type]
        return git_toplevel
    if inside_workspace:
        assert workspace is not None
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
    normalisation used everywhere (upstream had two that disagreed, bug B7).
    """
    return _SESSION_DIR_UNSAFE.sub("-", workdir)


def project_layout(cwd: Path, workspace: Path | None, docker_dir: str,
                   git_toplevel: Path | None) -> ProjectLayout:
    """Project root, token, container workdir and the project/workspace mounts."""
    root = project_root(cwd, workspace, git_toplevel)
    token = project_token(root)
    below_root = cwd.relative_to(root).as_posix()
    if workspace is not None and root == workspace:
        target = posixpath.join(docker_dir, project_token(workspace))
        return ProjectLayout(root, token, _join(target, below_root),
                             (Mount(workspace, target),), workspace_read_only=False)
    project_target = posixpath.join(docker_dir, token)
    mounts: tuple[Mount, ...] = (Mount(root, project_target),)
    read_only_workspace = workspace is not None and cwd.is_relative_to(workspace)
    if read_only_workspace:
        assert workspace is not None
        workspace_target = posixpath.join(docker_dir, project_token(workspace))
        if workspace_target == project_target:
            # Same folder name as the workspace (upstream bug B23: duplicate mount point):
            # nest the writable project inside the read-only mirror instead.
            project_target = _join(workspace_target, root.relative_to(workspace).as_posix())
        mounts = (Mount(workspace, workspace_target, read_only=True), Mount(root, project_target))
    return ProjectLayout(root, token, _join(project_target, below_root), mounts,
                         workspace_read_only=read_only_workspace)


def protection_mounts(layout: ProjectLayout, protection: Protection) -> tuple[Mount, ...]:
    """The surface pins (see `launch.surface`): each pinned entry bound over itself —
    read-only, or read-write for commit mode's `.git` — plus a worktree's git folders,
    read-only at their own host path."""
    writable = next(m for m in layout.mounts if m.source == layout.root and not m.read_only)
    pins = tuple(
        Mount(layout.root / relative, _join(writable.target, relative), read_only=relative not in protection.writable_pins)
        for relative in sorted(protection.writable_pins + protection.pins)
    )
    return pins + tuple(Mount(folder, str(folder), read_only=True) for folder in protection.external)


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


def persistence_mounts(tool: Tool, state_home: Path, project_home: Path, *, ssh: bool) -> tuple[Mount, ...]:
    """The tool's state folders of this project, plus the install's SSH keys — READ-ONLY:
    the host key and the authorized keys are what the slot's sshd trusts, never the agent's
    to change (`launch.ssh`)."""
    mounts = tuple(Mount(project_home / p.relative, p.target) for p in PERSISTENCE[tool])
    return mounts + ((Mount(state_home / SSH_KEYS.relative, SSH_KEYS.target, read_only=True),) if ssh else ())


def shared_config_mounts(tool: Tool, state_home: Path, existing: tuple[str, ...]) -> tuple[Mount, ...]:
    """The user's shared agent configuration (`existing`: what is there, relative to
    `$LLM_DOCKER_HOME/shared`), read-only in the agent's home."""
    return tuple(Mount(state_home / SHARED_FOLDER / relative, target, read_only=True)
                 for relative, target in SHARED_CONFIG[tool].items() if relative in existing)


def dotfile_mounts(user_home: Path, existing: tuple[str, ...]) -> tuple[Mount, ...]:
    return tuple(Mount(user_home / name, posixpath.join(CONTAINER_HOME, name), read_only=True)
                 for name in existing)


def _join(base: str, relative: str) -> str:
    if relative in ("", "."):
        return base
    return str(PurePosixPath(base) / relative)
