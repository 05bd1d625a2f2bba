"""Create the per-tool persistence folders under `$LLM_DOCKER_HOME` with safe modes.

The engine refuses bind mounts whose source is missing (we never let it invent host
folders), so the executor calls this before creating a container.
"""

from __future__ import annotations

import os
from pathlib import Path

from launch.argv import Tool
from launch.identity import PERSISTENCE, SSH_KEYS, run_folder

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def prepare_state_folders(tool: Tool, state_home: Path, *, ssh: bool) -> None:
    """Create missing persistence folders (0700) and files (0600, `{}` for JSON)."""
    state_home.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    for entry in PERSISTENCE[tool] + ((SSH_KEYS,) if ssh else ()):
        path = state_home / entry.relative
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


def prepare_for_container(tool: Tool, state_home: Path, container_name: str, *, ssh: bool) -> Path:
    """Everything under `$LLM_DOCKER_HOME` one container mounts; returns its run folder."""
    prepare_state_folders(tool, state_home, ssh=ssh)
    return prepare_run_folder(state_home, container_name)
