"""Everything a launch plan needs to know about the host, gathered in one place.

This is the only module of the planning stage that reads the file system or the process
state; the planners (`launch.identity`, `launch.command`, `launch.spec`) are pure
functions of a `HostFacts`, so tests can build one by hand.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from launch.identity import OPTIONAL_DOTFILES, PROTECTED_PATTERNS, project_root

BOOT_FILE = "BOOT.md"
CLAUDE_FILE = "CLAUDE.md"
MAX_BOOT_PROMPT_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class HostFacts:
    launch_dir: Path
    workspace: Path | None
    user_home: Path
    state_home: Path
    uid: int
    gid: int
    environ: Mapping[str, str]
    stdin_tty: bool
    git_toplevel: Path | None
    protected: tuple[str, ...]
    dotfiles: tuple[str, ...]
    boot_prompt: str | None
    has_claude_md: bool
    launcher_pid: int
    launcher_start: str
    launch_id: str
    new_session_id: str
    platform: str = sys.platform
    tmux_available: bool = False
    #: (port, password) of this project's builder-api when the launch uses it (-a/-ab/autostart)
    builder_api: tuple[int, str] | None = None


def gather_host_facts(launch_dir: Path, *, user_home: Path, state_home: Path, workspace: Path | None,
                      toplevel: Path | None, environ: Mapping[str, str]) -> HostFacts:
    """Read the host facts for a launch from `launch_dir` (both folders already resolved;
    `toplevel` is `find_git_toplevel(launch_dir)`, which the caller needed for its guard)."""
    root = project_root(launch_dir, workspace, toplevel)
    launch_id = uuid.uuid4().hex
    return HostFacts(
        launch_dir=launch_dir,
        workspace=workspace,
        user_home=user_home,
        state_home=state_home,
        uid=os.getuid(),
        gid=os.getgid(),
        environ=dict(environ),
        stdin_tty=sys.stdin is not None and sys.stdin.isatty(),
        git_toplevel=toplevel,
        protected=existing_protected_paths(root),
        dotfiles=tuple(name for name in OPTIONAL_DOTFILES if (user_home / name).is_file()),
        boot_prompt=_read_boot_prompt(launch_dir / BOOT_FILE),
        has_claude_md=(launch_dir / CLAUDE_FILE).is_file(),
        launcher_pid=os.getpid(),
        launcher_start=process_start_time(os.getpid()) or "",
        launch_id=launch_id,
        new_session_id=str(uuid.uuid4()),
        platform=sys.platform,
        tmux_available=shutil.which("tmux", path=environ.get("PATH")) is not None,
    )


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, from /proc), or None if
    the process is gone. With the pid it identifies a process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, start: str) -> bool:
    """Whether the process that had `pid` and `start` is still running."""
    current = process_start_time(pid)
    return current is not None and (not start or current == start)


def find_git_toplevel(start: Path) -> Path | None:
    """The nearest ancestor holding `.git` (a folder, or a file for worktrees)."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def existing_protected_paths(root: Path) -> tuple[str, ...]:
    """Protected paths of `root` that exist and resolve inside it (relative, sorted).

    A symlink that leads out of the project is skipped: inside the container it points at
    a container path, not at the host file, so there is nothing to protect, and binding
    its host target would expose that file to the agent.
    """
    found: set[str] = set()
    resolved_root = root.resolve()
    for pattern in PROTECTED_PATTERNS:
        for path in root.glob(pattern):
            if path.resolve().is_relative_to(resolved_root) and path.resolve() != resolved_root:
                found.add(path.relative_to(root).as_posix())
    return tuple(sorted(found))


def _read_boot_prompt(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BOOT_PROMPT_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    if len(data) > MAX_BOOT_PROMPT_BYTES:
        data = data[:MAX_BOOT_PROMPT_BYTES]
    text = data.decode("utf-8", errors="replace").strip()
    return text or None
