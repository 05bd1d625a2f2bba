"""The host-executed surface of a project, defined in one place, and how a launch protects it.

The agent may edit the project: that is its job. But some files of a project are not
read by the user — they are *obeyed* by the user's host tools, which run what they say:

* git: `.git/config` (`core.fsmonitor`, `core.hooksPath`, aliases, filters), `.git/hooks`,
  `.git/commondir` and gitfiles (`.git` as a file) that redirect all of that elsewhere,
  `.git/info/attributes`, submodules' gitfiles and `.git/modules/*`, and a hooks folder
  inside the project named by `core.hooksPath` (husky, `.githooks`);
* agent and editor settings: `.claude/`, `.mcp.json`, `.opencode/`, `opencode.json[c]`,
  `.vscode/` (tasks, launch configs), `.idea/` (run configurations), `.devcontainer/`
  (`initializeCommand` runs on the host), `.cursor/`, `.zed/`;
* shell and commit tooling: `.envrc` (direnv), `.pre-commit-config.yaml`, `.husky/`;
* CI that runs with the user's secrets: `.github/`, `.gitlab-ci.yml`.

What a launch does with it (planned here, purely; gathered by `launch.hostfacts`):

* Every surface entry that exists at launch as a real folder or file is **pinned**: bind-
  mounted read-only over itself. A mount point cannot be renamed or removed from inside the
  container (EBUSY) and its content cannot change (EROFS), so renames, symlinks and new files
  cannot defeat it. `.git` is pinned whole: the agent still reads history, diffs and status.
  Every folder above a nested pin is bound over itself read-write, so it cannot be renamed
  away with the pin inside either.
* Everything else of the surface — entries absent at launch, symlinks (a bind mount would
  follow them out of the project) and odd file types — is **watched**: the tripwire
  (`supervisor.tripwire`) records it before the container starts and, when the slot ends,
  moves any change into a quarantine folder and restores what was there.
* Commit mode (`AGENT_GIT_COMMIT=true`) mounts `.git` read-write as its own mount (so it still
  cannot be moved away) with read-only pins over `config`, `hooks`, `info` and `modules`;
  git's other redirections (`commondir`, `config.worktree`, `gitdir`) are watched. The agent
  can commit; it cannot change what the host's git executes.

Deliberately not part of the surface: the project's own code and build files (`Makefile`,
`package.json` scripts, tests). The user chooses to run those, as they would run a
colleague's change — review before running.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path

#: Entries at the project root that host tools read and run (see the module docstring).
ROOT_ENTRIES = (
    ".git",
    ".claude",
    ".mcp.json",
    ".opencode",
    "opencode.json",
    "opencode.jsonc",
    ".vscode",
    ".idea",
    ".devcontainer",
    ".cursor",
    ".zed",
    ".envrc",
    ".pre-commit-config.yaml",
    ".husky",
    ".githooks",
    ".github",
    ".gitlab-ci.yml",
)

GIT = ".git"
#: Inside `.git`, in commit mode: pinned read-only (created first when missing, so the pin
#: exists) — what git executes or obeys.
GIT_PINNED_IN_COMMIT_MODE = ("config", "hooks", "info", "modules")
#: Folders git itself creates; made before the launch so they can be pinned.
GIT_CREATED_IN_COMMIT_MODE = ("hooks", "info")
#: Inside `.git`, in commit mode: redirections git follows if they appear — watched.
GIT_WATCHED_IN_COMMIT_MODE = ("commondir", "config.worktree", "gitdir")


class Kind(enum.Enum):
    """What an entry is, seen without following symlinks."""

    DIRECTORY = "directory"
    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"  # FIFO, socket, device
    ABSENT = "absent"


@dataclasses.dataclass(frozen=True)
class SurfaceFacts:
    """The surface as found on the host at launch (gathered by `launch.hostfacts`)."""

    #: Relative path -> kind, for every root entry, the submodule gitfiles and a hooks
    #: folder named by `core.hooksPath`, and (when `.git` is a folder) its commit-mode parts
    #: as `.git/<name>`.
    entries: Mapping[str, Kind]
    #: For a worktree or a submodule checked out alone (`.git` is a file): the host git
    #: folders it points to, mounted read-only at their own path so git works inside.
    external_git_dirs: tuple[Path, ...] = ()


class GitMode(enum.Enum):
    READ = "read"        # `.git` pinned read-only
    COMMIT = "commit"    # `.git` writable, what git executes pinned
    GITFILE = "gitfile"  # `.git` is a file (worktree): the file pinned, its git folders read-only
    NONE = "none"        # no `.git` folder or file: watched (an agent-made repository is quarantined)


@dataclasses.dataclass(frozen=True)
class Protection:
    """How one launch protects the surface."""

    #: Relative paths bind-mounted read-only over themselves.
    pins: tuple[str, ...]
    #: Relative paths bind-mounted read-write over themselves (commit mode's `.git`).
    writable_pins: tuple[str, ...]
    #: Relative paths the tripwire records at launch and checks when the slot ends.
    watched: tuple[str, ...]
    #: Folders to create before the launch so they can be pinned (commit mode).
    create: tuple[str, ...]
    #: Host git folders mounted read-only at their own path.
    external: tuple[Path, ...]
    git_mode: GitMode
    #: Things the user should know (e.g. why commit mode fell back to read-only).
    notes: tuple[str, ...] = ()


def _pinnable(kind: Kind) -> bool:
    return kind in (Kind.DIRECTORY, Kind.FILE)


def plan_protection(facts: SurfaceFacts, *, commit: bool) -> Protection:
    """Pins, watches and creations for one launch (pure)."""
    pins: list[str] = []
    writable: list[str] = []
    watched: list[str] = []
    create: list[str] = []
    notes: list[str] = []
    external: tuple[Path, ...] = ()
    for relative, kind in sorted(facts.entries.items()):
        if relative == GIT or relative.startswith(GIT + "/"):
            continue
        (pins if _pinnable(kind) else watched).append(relative)

    git_kind = facts.entries.get(GIT, Kind.ABSENT)
    if git_kind is Kind.DIRECTORY:
        unsafe = [name for name in GIT_PINNED_IN_COMMIT_MODE
                  if facts.entries.get(f"{GIT}/{name}", Kind.ABSENT) not in (Kind.ABSENT, Kind.DIRECTORY, Kind.FILE)]
        if commit and unsafe:
            notes.append(f"commit mode needs {', '.join(f'.git/{n}' for n in unsafe)} to be a plain folder or file "
                         "(not a symlink) — .git is read-only for this launch")
        if commit and not unsafe:
            mode = GitMode.COMMIT
            writable.append(GIT)
            for name in GIT_PINNED_IN_COMMIT_MODE:
                kind = facts.entries.get(f"{GIT}/{name}", Kind.ABSENT)
                if kind is Kind.ABSENT and name in GIT_CREATED_IN_COMMIT_MODE:
                    create.append(f"{GIT}/{name}")
                    pins.append(f"{GIT}/{name}")
                elif kind is Kind.ABSENT:
                    watched.append(f"{GIT}/{name}")
                else:
                    pins.append(f"{GIT}/{name}")
            for name in GIT_WATCHED_IN_COMMIT_MODE:
                kind = facts.entries.get(f"{GIT}/{name}", Kind.ABSENT)
                (pins if _pinnable(kind) else watched).append(f"{GIT}/{name}")
        else:
            mode = GitMode.READ
            pins.append(GIT)
    elif git_kind is Kind.FILE:
        mode = GitMode.GITFILE
        pins.append(GIT)
        external = facts.external_git_dirs
        if commit:
            notes.append("commit mode is for a project with its own .git folder; this one is a worktree "
                         "(.git is a file) — its git folders are read-only for this launch")
    else:
        mode = GitMode.NONE
        watched.append(GIT)
    # A pin holds only its own path: the folder above a nested pin (`lib` of `lib/.git`,
    # `scripts` of a `scripts/git-hooks` hooksPath) could be renamed away with the pin inside
    # and a new entry made in its place. So every folder above a pin is bound over itself
    # too, read-write: the agent still works in it, but cannot rename or remove it (EBUSY).
    # (Never inside a read-only pin: a writable bind there would open a hole in it.)
    read_only = tuple(pins)
    for relative in read_only:
        for ancestor in list(Path(relative).parents)[:-1]:
            folder = ancestor.as_posix()
            inside_pin = any(folder == pin or folder.startswith(pin + "/") for pin in read_only)
            if not inside_pin and folder not in writable:
                writable.append(folder)
    return Protection(pins=tuple(pins), writable_pins=tuple(writable), watched=tuple(sorted(watched)),
                      create=tuple(create), external=external, git_mode=mode, notes=tuple(notes))
