"""The tripwire: what the pins cannot hold, checked on the host when a slot ends.

`launch.surface` pins every existing part of a project's host-executed surface read-only.
What cannot be pinned — entries absent at launch (the agent could create `.vscode/` or a
`.git` of its own), symlinks, and in commit mode git's redirections inside `.git` — is
*watched*: `arm` records it before the container is created, and `settle` compares when the
container is gone (at the slot's end, or during recovery after a crash). Every change is
moved into `$LLM_DOCKER_HOME/quarantine/<id>/files/`, what was there is restored, and the
user gets one notice saying what changed, where it is now and how to accept it.

Everything here treats the project as hostile: paths are walked one component at a time
with `O_NOFOLLOW` folder descriptors, entries are looked at with `lstat`, moved with
`rename` relative to those descriptors, and nothing is ever read through a symlink. The
records live under `$LLM_DOCKER_HOME/tripwire/`, which no container mounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from launch.errors import EXIT_USAGE, LlmDockerError
from launch.surface import Kind, Protection
from supervisor.atomic import replace_atomically

#: Names that host tools obey in *any* folder of the project, not only at its root: git finds
#: the nearest `.git` from the folder it runs in, direnv loads `.envrc` on `cd`, and the agent
#: CLIs and editors read the settings of the folder they are started in.
NESTED_ENTRIES = frozenset({".git", ".envrc", ".claude", ".mcp.json", ".vscode", ".devcontainer"})
#: Inside a nested `.git` folder, what git executes or obeys (objects, refs and the index
#: change with every ordinary git command and are not looked at).
NESTED_GIT_SURFACE = ("config", "config.worktree", "commondir", "hooks", "info")
SKIPPED_FOLDERS = frozenset({".git", "node_modules"})
#: Upper bound for the folder walk at a slot's end.
MAX_WALKED_ENTRIES = 400_000
#: Deepest folder the walk checks (the walk recurses: an agent's chain of thousands of folders
#: would otherwise end it with a RecursionError or out of descriptors).
MAX_NESTED_DEPTH = 64
#: Deepest folder copied into a quarantine on another file system (deeper: not moved, reported).
MAX_COPIED_DEPTH = 200
#: The most bytes one quarantined entry keeps when it is copied to another file system; the
#: rest of larger files is dropped with the original.
MAX_QUARANTINED_BYTES = 256 * 1024 * 1024
#: What every quarantined file keeps whatever the bound (a planted config is small: never lost
#: to a big file copied before it).
KEPT_OF_EVERY_FILE = 1024 * 1024

RECORDS_FOLDER = "tripwire"
PRIVATE_MODE = 0o600
QUARANTINE_FOLDER = "quarantine"
MANIFEST = "manifest.json"
FILES = "files"
MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class Entry:
    """An entry as seen without following symlinks: its kind, and a symlink's target."""

    kind: Kind
    target: str | None = None

    def describe(self) -> str:
        return f"symlink → {self.target}" if self.kind is Kind.SYMLINK else self.kind.value


@dataclasses.dataclass(frozen=True)
class Change:
    relative: str
    was: Entry
    now: Entry


@dataclasses.dataclass(frozen=True)
class Report:
    root: Path
    changes: tuple[Change, ...]
    quarantine_id: str | None
    quarantine: Path | None
    problems: tuple[str, ...] = ()

    def notice(self) -> str | None:
        """One line for the user, or None when nothing changed."""
        if not self.changes and not self.problems:
            return None
        if not self.changes:
            return f"tripwire: {'; '.join(self.problems)}"
        listed = ", ".join(f"{c.relative} ({'created' if c.was.kind is Kind.ABSENT else 'replaced'})"
                           for c in self.changes[:MAX_LISTED])
        more = f" and {len(self.changes) - MAX_LISTED} more" if len(self.changes) > MAX_LISTED else ""
        text = (f"tripwire: the agent changed what your host tools run in {self.root}: {listed}{more} — "
                f"moved to {self.quarantine}, the originals restored. Review it; to keep it: "
                f"llm-docker quarantine accept {self.quarantine_id}")
        if self.problems:
            text += f" ({'; '.join(self.problems)})"
        return text


# -- walking the project without following symlinks ----------------------------------------

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def _parent(root: Path, relative: str) -> Iterator[tuple[int, str]]:
    """A descriptor of the folder holding `relative` (every component a real folder) and
    the entry's name. Raises OSError (ELOOP/ENOTDIR/ENOENT) when a parent is not one."""
    parts = Path(relative).parts
    descriptor = os.open(root, _DIRECTORY_FLAGS)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIRECTORY_FLAGS, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = child
        yield descriptor, parts[-1]
    finally:
        os.close(descriptor)


def _entry(folder: int, name: str) -> Entry:
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return Entry(Kind.ABSENT)
    except OSError:
        return Entry(Kind.OTHER)  # there, but its parent hides it (no search permission)
    if stat.S_ISLNK(mode):
        return Entry(Kind.SYMLINK, os.readlink(name, dir_fd=folder))
    if stat.S_ISDIR(mode):
        return Entry(Kind.DIRECTORY)
    if stat.S_ISREG(mode):
        return Entry(Kind.FILE)
    return Entry(Kind.OTHER)


def look(root: Path, relative: str) -> Entry | None:
    """The entry at `relative`, or None when a parent folder is not a real folder (then no
    host tool reaches it through the project either)."""
    try:
        with _parent(root, relative) as (folder, name):
            return _entry(folder, name)
    except OSError:
        return None


# -- arming ------------------------------------------------------------------------------

def records_folder(state_home: Path) -> Path:
    return state_home / RECORDS_FOLDER


def record_path(state_home: Path, run_id: str) -> Path:
    return records_folder(state_home) / f"{run_id}.json"


def arm(state_home: Path, run_id: str, root: Path, protection: Protection) -> None:
    """Before the container exists: create what commit mode pins, and record the watched
    entries (kept 0600 in a folder no container mounts)."""
    for relative in protection.create:
        with contextlib.suppress(FileExistsError), _parent(root, relative) as (folder, name):
            os.mkdir(name, 0o755, dir_fd=folder)
    watched = {}
    for relative in protection.watched:
        entry = look(root, relative)
        if entry is not None:
            watched[relative] = {"kind": entry.kind.value, "target": entry.target}
    records = records_folder(state_home)
    records.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {"root": str(root), "run_id": run_id, "watched": watched, "armed_at": time.time()}
    replace_atomically(record_path(state_home, run_id), json.dumps(record).encode(), PRIVATE_MODE)


# -- settling ----------------------------------------------------------------------------

def settle(state_home: Path, run_id: str) -> Report | None:
    """After the container is gone: compare the watched entries with the record, quarantine
    every change and restore what was there. None when the run has no record (settled
    already, or never armed). Idempotent across processes (a lock serialises settlers)."""
    with _lock(state_home):
        path = record_path(state_home, run_id)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        root = Path(record["root"])
        changes = []
        for relative, saved in sorted(record["watched"].items()):
            was = Entry(Kind(saved["kind"]), saved.get("target"))
            now = look(root, relative)
            if now is not None and now != was:
                changes.append(Change(relative, was, now))
        nested, problems = nested_changes(root, since=record["armed_at"])
        changes += nested
        report = _quarantine(state_home, root, run_id, changes) if changes else Report(root, (), None, None)
        if problems:
            report = dataclasses.replace(report, problems=report.problems + tuple(problems))
        path.unlink(missing_ok=True)
        return report


def nested_changes(root: Path, *, since: float) -> tuple[list[Change], list[str]]:
    """Surface entries below the root (`NESTED_ENTRIES`) that were created or changed since
    `since`, judged by their ctime — which the agent cannot set back, unlike mtime. A nested
    `.git` counts as changed when what git executes in it changed (`NESTED_GIT_SURFACE`), or
    when it cannot be read. A folder the walk cannot enter (an agent's `chmod 311`: git still
    runs in it) is a change when made so in the session, else named among the problems, as
    are folders deeper than `MAX_NESTED_DEPTH`: never silently taken for checked."""
    found: list[Change] = []
    problems: list[str] = []
    walked = 0

    def unreadable(error: OSError) -> None:  # the root, or a folder changed while the walk ran
        where = os.path.relpath(error.filename, root) if isinstance(error.filename, str) else "a folder"
        problems.append(f"could not read {where} ({error.strerror}): nested settings in it were not checked")

    too_deep = False
    for folder, folders, files, descriptor in os.fwalk(root, follow_symlinks=False, onerror=unreadable):
        relative_folder = os.path.relpath(folder, root)
        walked += len(folders) + len(files)
        if walked > MAX_WALKED_ENTRIES:
            return found, [*problems, f"the project has over {MAX_WALKED_ENTRIES} files: nested settings were not "
                                      "all checked"]
        if _looks_like_git_folder(folders, files):
            found += _planted_git_folder(descriptor, relative_folder, files + folders, since)
        for name in sorted(NESTED_ENTRIES.intersection(folders + files)):
            if relative_folder == ".":
                continue  # the root's own entries are pinned or watched by name
            if _changed_since(descriptor, name, since):
                entry = _entry(descriptor, name)
                found.append(Change(f"{relative_folder}/{name}", Entry(Kind.ABSENT), entry))
        # never walk into a repository's own folder, installed packages (no host tool is
        # started from inside them), or back into a reported entry
        entered = []
        for name in folders:
            relative = os.path.normpath(f"{relative_folder}/{name}")
            if name in SKIPPED_FOLDERS or (name in NESTED_ENTRIES and any(c.relative == relative for c in found)):
                continue
            try:
                info: os.stat_result | None = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError:
                info = None  # there, but its parent hides it (no search permission)
            if info is not None and not stat.S_ISDIR(info.st_mode):
                continue  # a link to a folder: listed among folders, never walked (nor followed)
            if relative.count("/") >= MAX_NESTED_DEPTH:
                too_deep = True
                continue
            if info is None or not os.access(name, os.R_OK, dir_fd=descriptor, follow_symlinks=False):
                # git runs in a folder it may not list: one made unreadable in the session (the
                # chmod is a ctime change) goes to the quarantine whole, an older one is named
                if info is None or info.st_ctime >= since:
                    found.append(Change(relative, Entry(Kind.DIRECTORY), _entry(descriptor, name)))
                else:
                    problems.append(f"could not read {relative} — review it (and its permissions) before running "
                                    "git in it")
                continue
            entered.append(name)
        folders[:] = entered
    if too_deep:
        problems.append(f"folders deeper than {MAX_NESTED_DEPTH} levels were not checked")
    return found, problems


def _looks_like_git_folder(folders: list[str], files: list[str]) -> bool:
    """What git takes for a repository's own folder when it runs *in* it (as for a bare
    repository): `HEAD`, `objects/` and `refs/`. An agent can turn any folder of the
    project into one, and git, run there, obeys its `config` before it looks for `.git`."""
    return "HEAD" in files and "objects" in folders and "refs" in folders


def _planted_git_folder(folder: int, relative_folder: str, names: list[str], since: float) -> list[Change]:
    """The git entries of a folder that git would use as a repository, when what git
    executes in it changed during the session; `HEAD` goes too, so git no longer takes the
    folder for a repository (the user's own files in it stay)."""
    if not any(_changed_since(folder, name, since) for name in NESTED_GIT_SURFACE + ("HEAD",) if name in names):
        return []
    prefix = "" if relative_folder == "." else f"{relative_folder}/"
    return [Change(f"{prefix}{name}", Entry(Kind.ABSENT), _entry(folder, name))
            for name in ("HEAD",) + NESTED_GIT_SURFACE if name in names]


def _changed_since(folder: int, name: str, since: float) -> bool:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not to be looked at: not proven unchanged
    is_git_folder = name == ".git" and stat.S_ISDIR(info.st_mode)
    if info.st_ctime >= since and not is_git_folder:  # a git folder's own entry changes with every commit
        return True
    if not stat.S_ISDIR(info.st_mode):
        return False
    inside = NESTED_GIT_SURFACE if is_git_folder else None
    try:
        child = os.open(name, _DIRECTORY_FLAGS, dir_fd=folder)
    except OSError:
        return True  # a folder of the surface that cannot be read is not proven unchanged
    try:
        return _tree_changed_since(child, since, only=inside, depth=3)
    except OSError:
        return True
    finally:
        os.close(child)


def _tree_changed_since(folder: int, since: float, *, only: tuple[str, ...] | None, depth: int) -> bool:
    for entry in os.scandir(folder):
        if only is not None and entry.name not in only:
            continue
        info = entry.stat(follow_symlinks=False)
        if info.st_ctime >= since:
            return True
        if depth > 0 and stat.S_ISDIR(info.st_mode):
            child = os.open(entry.name, _DIRECTORY_FLAGS, dir_fd=folder)
            try:
                if _tree_changed_since(child, since, only=None, depth=depth - 1):
                    return True
            finally:
                os.close(child)
    return False


def _quarantine(state_home: Path, root: Path, run_id: str, changes: list[Change]) -> Report:
    quarantine_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{root.name}-{run_id[-8:]}"
    folder = state_home / QUARANTINE_FOLDER / quarantine_id
    (folder / FILES).mkdir(mode=0o700, parents=True)
    (state_home / QUARANTINE_FOLDER).chmod(0o700)
    moved: list[Change] = []
    problems: list[str] = []
    for change in changes:
        try:
            _move_out(root, change.relative, folder / FILES)
        except OSError as error:
            problems.append(f"could not move {change.relative} ({error.strerror})")
            continue
        moved.append(change)
        if change.was.kind is Kind.SYMLINK and change.was.target is not None:
            try:
                with _parent(root, change.relative) as (parent, name):
                    os.symlink(change.was.target, name, dir_fd=parent)
            except OSError as error:
                problems.append(f"could not restore the symlink {change.relative} ({error.strerror})")
    manifest = {"project": str(root), "run_id": run_id, "quarantined_at": time.time(),
                "changes": [{"path": c.relative, "was": c.was.describe(), "now": c.now.describe(),
                             "restore_symlink": c.was.target if c.was.kind is Kind.SYMLINK else None}
                            for c in moved]}
    replace_atomically(folder / MANIFEST, json.dumps(manifest, indent=2).encode(), PRIVATE_MODE)
    return Report(root, tuple(moved), quarantine_id, folder, tuple(problems))


def _move_out(root: Path, relative: str, destination: Path) -> None:
    """Move the entry at `relative` (not following it) to `destination/relative`."""
    target_folder = destination / Path(relative).parent
    target_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _parent(root, relative) as (parent, name):
        target = os.open(target_folder, _DIRECTORY_FLAGS)
        try:
            _move(parent, name, target)
        finally:
            os.close(target)


def _move(parent: int, name: str, destination: int) -> None:
    """Move the entry `name` of `parent` into the folder `destination`: a rename, or where
    the two are on different file systems, `_copy_then_remove`."""
    try:
        os.rename(name, name, src_dir_fd=parent, dst_dir_fd=destination)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        _copy_then_remove(parent, name, destination)


def _copy_then_remove(parent: int, name: str, destination: int) -> None:
    """Across file systems: copy (links as links), then remove. Both sides are reached
    through folder descriptors opened `O_NOFOLLOW`, one level at a time, so no symlink the
    agent planted is followed — nor even opened — on Linux and macOS alike."""
    budget = [MAX_QUARANTINED_BYTES]
    if _copy_entry(parent, name, destination, budget) is Kind.DIRECTORY:
        _copy_folder(parent, destination, name, budget, depth=0)
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _copy_folder(parent: int, destination: int, name: str, budget: list[int], *, depth: int) -> None:
    """The contents of the folder `name` of `parent` into the (new, empty) folder `name` of
    `destination`."""
    if depth > MAX_COPIED_DEPTH:
        raise OSError(errno.ELOOP, f"folders nested deeper than {MAX_COPIED_DEPTH}")
    source = os.open(name, _DIRECTORY_FLAGS | os.O_NONBLOCK, dir_fd=parent)
    try:
        target = os.open(name, _DIRECTORY_FLAGS, dir_fd=destination)
        try:
            for child in sorted(os.listdir(source)):
                if _copy_entry(source, child, target, budget) is Kind.DIRECTORY:
                    _copy_folder(source, target, child, budget, depth=depth + 1)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_entry(folder: int, name: str, destination: int, budget: list[int]) -> Kind:
    """Copy one entry of `folder` into `destination` without following it (and refusing
    to write through anything already there): a symlink as a symlink, a folder as an empty
    folder (its contents follow), a file's bytes and permission bits; nothing for a FIFO,
    socket or device (nothing to keep, and a FIFO could block). The bytes copied are bounded
    by `budget` (what is left of `MAX_QUARANTINED_BYTES`): an agent's sparse terabyte file
    keeps only its start — the check stays bounded in time, the user's disk in use."""
    entry = _entry(folder, name)
    if entry.kind is Kind.SYMLINK and entry.target is not None:
        os.symlink(entry.target, name, dir_fd=destination)
    elif entry.kind is Kind.DIRECTORY:
        os.mkdir(name, 0o700, dir_fd=destination)
    elif entry.kind is Kind.FILE:
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        with os.fdopen(source, "rb") as source_file:
            info = os.fstat(source)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, f"{name} changed while it was copied")
            copy = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                           dir_fd=destination)
            with os.fdopen(copy, "wb") as copy_file:
                allowed = max(budget[0], 0) + KEPT_OF_EVERY_FILE
                while allowed > 0 and (chunk := source_file.read(min(KEPT_OF_EVERY_FILE, allowed))):
                    copy_file.write(chunk)
                    allowed -= len(chunk)
                    budget[0] -= len(chunk)
                os.fchmod(copy, stat.S_IMODE(info.st_mode) & 0o777)
    return entry.kind


# -- the quarantine, for `llm-docker quarantine` -------------------------------------------

@dataclasses.dataclass(frozen=True)
class Quarantined:
    quarantine_id: str
    project: str
    paths: tuple[str, ...]
    quarantined_at: float


class QuarantineError(LlmDockerError):
    """A quarantine that cannot be accepted as asked; `str()` is one line for the user, and
    the user's ask is what to change: exit 2."""

    exit_code = EXIT_USAGE


def quarantined(state_home: Path) -> list[Quarantined]:
    folder = state_home / QUARANTINE_FOLDER
    found = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        found.append(Quarantined(entry.name, manifest["project"], tuple(c["path"] for c in manifest["changes"]),
                                 manifest["quarantined_at"]))
    return found


def accept(state_home: Path, quarantine_id: str) -> Quarantined:
    """Put the quarantined entries back into the project (the user reviewed them) and
    forget the quarantine. Refuses when the project has something at one of the paths,
    other than the symlink the tripwire restored."""
    folder = state_home / QUARANTINE_FOLDER / quarantine_id
    if "/" in quarantine_id or quarantine_id in ("", ".", "..") or not (folder / MANIFEST).is_file():
        raise QuarantineError(f"no quarantine {quarantine_id!r} — `llm-docker quarantine` lists them")
    manifest = json.loads((folder / MANIFEST).read_text())
    root = Path(manifest["project"])
    for change in manifest["changes"]:
        now = look(root, change["path"])
        restored = change.get("restore_symlink")
        if now is None or (now.kind is not Kind.ABSENT and not (now.kind is Kind.SYMLINK and now.target == restored)):
            raise QuarantineError(f"{root / change['path']} exists now — move it away first, then accept again")
    for change in manifest["changes"]:
        with _parent(root, change["path"]) as (parent, name):
            if change.get("restore_symlink"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=parent)
            source = os.open(folder / FILES / Path(change["path"]).parent, _DIRECTORY_FLAGS)
            try:
                _move(source, name, parent)  # the quarantine may be on another file system
            finally:
                os.close(source)
    shutil.rmtree(folder)
    return Quarantined(quarantine_id, str(root), tuple(c["path"] for c in manifest["changes"]),
                       manifest["quarantined_at"])


# -- small helpers -------------------------------------------------------------------------

@contextlib.contextmanager
def _lock(state_home: Path) -> Iterator[None]:
    folder = records_folder(state_home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
