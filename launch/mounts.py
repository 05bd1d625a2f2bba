"""Every bind mount of a launch: which host folders the container gets, where, and how.

Pure functions only: the facts they need (resolved paths, the project's identity, which
shared files and dotfiles exist) are gathered by `launch.hostfacts` and passed in. Who the
project is (root, token, state home) is `launch.identity`.

* container workdir = `DOCKER_DIR/<token>/<path below the root>`, or the workspace mirror
  when launched at the workspace root;
* the project read-write, WORKSPACE_DIR read-only beside it (`project_layout`);
* the host-executed surface pinned over itself (`protection_mounts`, see `launch.surface`);
* the tool's per-project state, the install's SSH keys, the user's shared configuration
  and dotfiles (read-only where the agent must not change them).
"""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path, PurePosixPath

from launch.identity import ProjectIdentity, project_token
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


@dataclasses.dataclass(frozen=True)
class Mount:
    """A bind mount: host `source` at container `target`."""

    source: Path
    target: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class ProjectLayout:
    """The project as the container sees it: its identity, workdir and folder mounts."""

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

#: Per-container folder for the hooks' events file (`runs/<container name>` on the host).
RUNS_FOLDER = "runs"
RUN_TARGET = "/run/llm-docker"
EVENTS_FILE = "events.jsonl"


def run_folder(state_home: Path, container_name: str) -> Path:
    return state_home / RUNS_FOLDER / container_name


def project_layout(cwd: Path, workspace: Path | None, docker_dir: str, identity: ProjectIdentity) -> ProjectLayout:
    """Container workdir and the project/workspace mounts of a launch from `cwd` (resolved;
    `identity` is `launch.identity.project_identity` of it, `docker_dir` already checked)."""
    root, token = identity.root, identity.token
    below_root = cwd.relative_to(root).as_posix()
    if workspace is not None and root == workspace:
        target = posixpath.join(docker_dir, project_token(workspace))
        return ProjectLayout(root, token, _join(target, below_root),
                             (Mount(workspace, target),), workspace_read_only=False)
    project_target = posixpath.join(docker_dir, token)
    mounts: tuple[Mount, ...] = (Mount(root, project_target),)
    read_only_workspace = workspace is not None and cwd.is_relative_to(workspace)
    if workspace is not None and read_only_workspace:
        workspace_target = posixpath.join(docker_dir, project_token(workspace))
        if workspace_target == project_target:
            # Same folder name as the workspace (upstream: a duplicate mount point;
            # docs/upstream.md#workspace-named-project):
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
        Mount(layout.root / relative, _join(writable.target, relative),
              read_only=relative not in protection.writable_pins)
        for relative in sorted(protection.writable_pins + protection.pins)
    )
    return pins + tuple(Mount(folder, str(folder), read_only=True) for folder in protection.external)


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
