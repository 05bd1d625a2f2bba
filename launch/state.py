"""Create the per-tool persistence folders under `$LLM_DOCKER_HOME` with safe modes.

The engine refuses bind mounts whose source is missing (we never let it invent host
folders), so the executor calls this before creating a container. A tool's state is kept
per project (`launch.identity.project_state_home`); the first launch of a project moves
its Claude sessions out of the shared folder of earlier versions, so they stay resumable.
"""

from __future__ import annotations

import os
from pathlib import Path

from launch.identity import claude_session_dir_name
from launch.mounts import PERSISTENCE, SSH_KEYS, run_folder
from launch.tools import Tool

FOLDER_MODE = 0o700
FILE_MODE = 0o600


#: Where versions before per-project state kept every project's Claude sessions.
LEGACY_CLAUDE_PROJECTS = "claude/.claude/projects"


def prepare_state_folders(tool: Tool, state_home: Path, project_home: Path, *, ssh: bool,
                          workdir: str | None = None) -> None:
    """Create missing persistence folders (0700) and files (0600, `{}` for JSON). The image's
    first-run hook (`entrypoint.d/10-first-run`) takes a `{}` Claude home file for absent and
    seeds it inside the cage; the host never writes more into the agent's state."""
    state_home.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    project_home.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if tool is Tool.CLAUDE and workdir is not None:
        _adopt_legacy_claude_sessions(state_home, project_home, workdir)
    entries = [(project_home, entry) for entry in PERSISTENCE[tool]]
    entries += [(state_home, SSH_KEYS)] if ssh else []
    for base, entry in entries:
        path = base / entry.relative
        if entry.is_file:
            path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
            if not path.exists():
                _write_new_file(path, "{}\n")
        else:
            path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)


def _write_new_file(path: Path, text: str) -> None:
    """Create `path` atomically: a crash leaves either no file or the whole file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def prepare_run_folder(state_home: Path, container_name: str) -> Path:
    """The per-container folder the hooks write their events file into."""
    folder = run_folder(state_home, container_name)
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    return folder


def prepare_for_container(tool: Tool, state_home: Path, project_home: Path, container_name: str, *,
                          ssh: bool, workdir: str | None = None) -> Path:
    """Everything under `$LLM_DOCKER_HOME` one container mounts; returns its run folder."""
    prepare_state_folders(tool, state_home, project_home, ssh=ssh, workdir=workdir)
    return prepare_run_folder(state_home, container_name)


def _adopt_legacy_claude_sessions(state_home: Path, project_home: Path, workdir: str) -> None:
    """Move this workdir's sessions from the shared folder of earlier versions into the
    project's own state, once (a rename; symlinks are moved as links, never followed)."""
    name = claude_session_dir_name(workdir)
    legacy = state_home / LEGACY_CLAUDE_PROJECTS / name
    target = project_home / PERSISTENCE[Tool.CLAUDE][0].relative / "projects" / name  # claude/.claude/projects
    if not legacy.is_dir() or legacy.is_symlink() or os.path.lexists(target):
        return
    target.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    try:
        os.rename(legacy, target)
    except OSError:
        pass  # another launch moved it first, or another file system: the sessions stay where they were
