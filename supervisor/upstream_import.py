"""`llm-docker init --from-upstream`: read an upstream (bash) install, and import its slots.

Upstream kept its settings in the checkout (`src/llm-docker.conf`, `src/.env`, both `source`d
by bash) and one slot file per tool and slot for all projects
(`~/.llm-docker/claude/.claude/slot_N.id`, `~/.llm-docker/opencode/.local/share/opencode/slot_N.id`,
one line: the session id). Here slots are kept per (tool, project, slot) in the state store, so
each slot file must be given its project:

* Claude: the session's `<id>.jsonl` under `claude/.claude/projects/<folder>/` records the
  container folder it ran in (`cwd`), checked against the folder's name;
* OpenCode: the `session` row of `opencode.db` has the container folder (`directory`);
* the container folder becomes a host folder the way upstream mounted it: `DOCKER_DIR/<name of
  WORKSPACE_DIR>/...` is the workspace itself, `DOCKER_DIR/<token>/...` the workspace's child
  of that token; a project launched outside the workspace left only its folder's name behind,
  so that slot is reported, not guessed;
* the host folder's project and workdir are then what a launch from it would use
  (`launch.project.locate_project`, `launch.mounts.project_layout`).

Every one of these files was writable by the agent (the checkout often sits in a project
folder; the state folders were mounted into the containers). They are read as hostile
(`supervisor.untrusted`): no symlink followed below the folder the user named, regular files
only, bounded bytes, entries and time; the conf is parsed as data, never run; the OpenCode
database is copied (bounded) and queried as a private copy. An import never overwrites a slot
this install has already saved.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import posixpath
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from launch.errors import ConfigError
from launch.guards import check_docker_dir
from launch.identity import claude_session_dir_name, project_state_home, project_token
from launch.mounts import project_layout
from launch.project import locate_project
from launch.state import prepare_state_folders
from launch.tools import Tool
from supervisor.store import SavedSlot, StateStore
from supervisor.untrusted import MAX_ENTRIES, Refused, describe, open_directory, read_tail, run_bounded

UPSTREAM_CONF = "src/llm-docker.conf"
UPSTREAM_ENV = "src/.env"
#: Upstream's per-tool state folders below its `~/.llm-docker`.
CLAUDE_HOME = "claude/.claude"
OPENCODE_HOME = "opencode/.local/share/opencode"
OPENCODE_DATABASE = "opencode.db"
TOOL_FOLDERS = {"claude": CLAUDE_HOME, "opencode": OPENCODE_HOME}

_SLOT_FILE = re.compile(r"slot_([0-9]{1,9})\.id")
_SESSION_ID = {"claude": re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"),
               "opencode": re.compile(r"[A-Za-z0-9_-]{1,128}")}
MAX_SLOT = 99
#: Bounds on what the agent could have made of these files.
MAX_CONF_BYTES = 256 * 1024
MAX_SLOT_FILE_BYTES = 4096
SESSION_TAIL_BYTES = 256 * 1024
MAX_DATABASE_BYTES = 1024 * 1024 * 1024
QUERY_SECONDS = 10.0
READ_SECONDS = 120.0


class Unmappable(Exception):
    """Why a slot cannot be given a project (the message completes "could not map ...: ")."""


@dataclasses.dataclass(frozen=True)
class UpstreamFiles:
    """The checkout's two files as text ("" when missing or refused) and what was refused."""

    conf_text: str
    env_text: str
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class UpstreamLayout:
    """Where upstream kept its state, and how it mounted projects (its effective values)."""

    state_home: Path
    workspace: Path | None
    docker_dir: str


@dataclasses.dataclass(frozen=True)
class SlotFile:
    tool: str
    slot: int
    session_id: str
    saved_at: float

    @property
    def label(self) -> str:
        return f"{self.tool} slot {self.slot}"


@dataclasses.dataclass(frozen=True)
class Unmapped:
    """A slot file that was not imported: which one, and why."""

    label: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Mapped:
    """A slot file given its project: the row it becomes in the state store."""

    slot: SlotFile
    project: str
    workdir: str
    upstream_workdir: str


@dataclasses.dataclass(frozen=True)
class SlotImport:
    saved: tuple[Mapped, ...]
    kept: tuple[Mapped, ...]  # this install had already saved a session for that slot
    unmapped: tuple[Unmapped, ...]
    notes: tuple[str, ...] = ()  # what the user should know about the saved slots' sessions


# -- reading (synchronous, bounded; run in a bounded daemon thread) ------------------------


def _read_bounded(name: str, dir_fd: int, limit: int) -> str:
    """The whole regular file `name` of the directory `dir_fd`, at most `limit` bytes.
    Refused if it is a symlink, not a regular file, or larger."""
    try:
        data, size = read_tail(Path(name), limit, dir_fd=dir_fd)
    except Refused as refused:
        raise Refused(f"{name} {refused}") from None
    if size > limit:
        raise Refused(f"{name} is larger than {limit // 1024} KiB")
    return data.decode("utf-8", errors="replace")


def read_checkout(checkout: Path) -> UpstreamFiles:
    """Upstream's `src/llm-docker.conf` and `src/.env`, read without following a symlink
    below `checkout` (a missing file is fine: nothing to import from it)."""
    problems: list[str] = []
    texts = {UPSTREAM_CONF: "", UPSTREAM_ENV: ""}
    try:
        fd = open_directory(checkout / "src", trusted=checkout)
    except FileNotFoundError:
        raise ConfigError(f"{checkout}: no src/ folder — not an upstream llm-docker checkout") from None
    except (Refused, OSError) as error:
        raise ConfigError(f"{checkout}/src: not read ({error})") from None
    try:
        for relative in texts:
            name = posixpath.basename(relative)
            try:
                texts[relative] = _read_bounded(name, fd, MAX_CONF_BYTES)
            except FileNotFoundError:
                continue
            except Refused as refused:
                problems.append(f"{relative}: not read — {str(refused).removeprefix(name + ' ')}")
            except OSError as error:
                problems.append(f"{relative}: not read — {error.strerror}")
    finally:
        os.close(fd)
    return UpstreamFiles(texts[UPSTREAM_CONF], texts[UPSTREAM_ENV], tuple(problems))


def _entries(fd: int) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of at most `MAX_ENTRIES` entries of the directory `fd`."""
    with os.scandir(fd) as entries:
        for count, entry in enumerate(entries):
            if count >= MAX_ENTRIES:
                return
            try:
                yield entry.name, entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue


def read_slot_files(state_home: Path, tool: str) -> tuple[list[SlotFile], list[Unmapped]]:
    """Every `slot_N.id` of the tool's upstream state folder; symlinks and other oddities
    are reported, never followed."""
    folder = state_home / TOOL_FOLDERS[tool]
    try:
        fd = open_directory(folder, trusted=state_home)
    except FileNotFoundError:
        return [], []
    except (Refused, OSError) as error:
        return [], [Unmapped(f"{tool} slots", f"{folder} not read ({error})")]
    found: list[SlotFile] = []
    unmapped: list[Unmapped] = []
    try:
        for name, info in sorted(_entries(fd)):
            match = _SLOT_FILE.fullmatch(name)
            if match is None:
                continue
            label = f"{tool} slot {int(match.group(1))} ({name})"
            if not stat.S_ISREG(info.st_mode):
                unmapped.append(Unmapped(label, f"is {describe(info.st_mode)} — not followed"))
                continue
            try:
                text = _read_bounded(name, fd, MAX_SLOT_FILE_BYTES)
            except (Refused, OSError) as error:
                unmapped.append(Unmapped(label, f"not read ({error})"))
                continue
            session = (text.strip().splitlines() or [""])[0].strip()
            slot = int(match.group(1))
            if not _SESSION_ID[tool].fullmatch(session):
                unmapped.append(Unmapped(label, "does not hold a session id"))
            elif not 1 <= slot <= MAX_SLOT:
                unmapped.append(Unmapped(label, f"slots are 1..{MAX_SLOT} here"))
            else:
                found.append(SlotFile(tool, slot, session, info.st_mtime))
    finally:
        os.close(fd)
    return found, unmapped


def _session_cwd(tail: bytes, session_id: str) -> str | None:
    """The `cwd` of the last well-formed line of a Claude session that names it."""
    for line in reversed(tail.decode("utf-8", errors="replace").splitlines()):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(record, dict):
            continue
        cwd, owner = record.get("cwd"), record.get("sessionId", session_id)
        if isinstance(cwd, str) and owner == session_id:
            return cwd
    return None


def claude_workdirs(state_home: Path, session_ids: Sequence[str]) -> dict[str, str | Unmappable]:
    """session id -> the container folder its `.jsonl` records (or why there is none).
    Only real folders of `claude/.claude/projects/` are searched (a symlinked one is skipped)."""
    projects = state_home / CLAUDE_HOME / "projects"
    result: dict[str, str | Unmappable] = {}
    try:
        fd = open_directory(projects, trusted=state_home)
    except (FileNotFoundError, NotADirectoryError, Refused, OSError):
        return {session: Unmappable(f"no {CLAUDE_HOME}/projects folder to find its session in")
                for session in session_ids}
    try:
        folders = sorted(name for name, info in _entries(fd) if stat.S_ISDIR(info.st_mode))
    finally:
        os.close(fd)
    wanted = set(session_ids)
    for folder in folders:
        if not wanted:
            break
        try:
            inner = open_directory(projects / folder, trusted=state_home)
        except (Refused, OSError):
            continue
        try:
            for session in sorted(wanted):
                try:
                    tail, size = read_tail(Path(f"{session}.jsonl"), SESSION_TAIL_BYTES, dir_fd=inner)
                except FileNotFoundError:
                    continue
                except (Refused, OSError) as error:
                    result[session] = Unmappable(f"its session file is not readable ({error})")
                    wanted.discard(session)
                    continue
                wanted.discard(session)
                if size > len(tail):
                    tail = tail.split(b"\n", 1)[-1]  # the first line of a tail is cut
                cwd = _session_cwd(tail, session)
                if cwd is None:
                    result[session] = Unmappable("its session file records no working folder")
                elif not _plain_container_path(cwd) or claude_session_dir_name(cwd) != folder:
                    result[session] = Unmappable(f"its session file names a folder ({cwd[:200]!r}) "
                                                 f"that does not match where it is kept")
                else:
                    result[session] = cwd
        finally:
            os.close(inner)
    for session in wanted:
        result[session] = Unmappable("no session file for it under claude/.claude/projects")
    return result


def _plain_container_path(path: str) -> bool:
    return (path.startswith("/") and len(path) <= 4096 and "\x00" not in path
            and posixpath.normpath(path) == path)


def _copy_bounded(name: str, dir_fd: int, target: Path, limit: int) -> bool:
    """Copy the regular file `name` (never a symlink) to `target`; False if missing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        source = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW on a symlink
            raise Refused(f"{name} is a symlink") from None
        raise
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{name} is not a regular file ({describe(info.st_mode)})")
        if info.st_size > limit:
            raise Refused(f"{name} is larger than {limit // (1024 * 1024)} MiB")
        with os.fdopen(os.dup(source), "rb") as reader, open(target, "xb") as writer:
            shutil.copyfileobj(reader, writer)
            if writer.tell() > limit:
                raise Refused(f"{name} grew past {limit // (1024 * 1024)} MiB while being read")
    finally:
        os.close(source)
    return True


def opencode_workdirs(state_home: Path, session_ids: Sequence[str]) -> dict[str, str | Unmappable]:
    """session id -> the container folder of its `session` row (or why there is none),
    from a private copy of upstream's `opencode.db` (and its WAL)."""
    missing = {session: Unmappable("no OpenCode database to find its session in") for session in session_ids}
    if not session_ids:
        return {}
    try:
        fd = open_directory(state_home / OPENCODE_HOME, trusted=state_home)
    except (Refused, OSError):
        return dict(missing)
    with tempfile.TemporaryDirectory(prefix="llm-docker-upstream-") as private:
        copy = Path(private) / OPENCODE_DATABASE
        try:
            if not _copy_bounded(OPENCODE_DATABASE, fd, copy, MAX_DATABASE_BYTES):
                return dict(missing)
            _copy_bounded(f"{OPENCODE_DATABASE}-wal", fd, Path(f"{copy}-wal"), MAX_DATABASE_BYTES)
        except (Refused, OSError) as error:
            return {session: Unmappable(f"the OpenCode database is not readable ({error})") for session in session_ids}
        finally:
            os.close(fd)
        return _query_directories(copy, session_ids)


def _query_directories(database: Path, session_ids: Sequence[str]) -> dict[str, str | Unmappable]:
    result: dict[str, str | Unmappable] = {}
    try:
        connection = sqlite3.connect(database, timeout=QUERY_SECONDS)
    except sqlite3.Error as error:
        return {session: Unmappable(f"the OpenCode database cannot be opened ({error})") for session in session_ids}
    deadline = time.monotonic() + QUERY_SECONDS
    connection.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(session)")}
        if not {"id", "directory"} <= columns:
            return {session: Unmappable("the OpenCode database has no session table") for session in session_ids}
        for session in session_ids:
            row = connection.execute("SELECT directory FROM session WHERE id=?", (session,)).fetchone()
            if row is None:
                result[session] = Unmappable("no such session in the OpenCode database")
            elif not isinstance(row[0], str) or not _plain_container_path(row[0]):
                result[session] = Unmappable("its session row has no usable directory")
            else:
                result[session] = row[0]
    except sqlite3.Error as error:
        return {session: Unmappable(f"the OpenCode database cannot be read ({error})") for session in session_ids}
    finally:
        connection.close()
    return result


def _children(workspace: Path) -> list[Path]:
    """The real folders directly in the workspace (symlinks are not projects upstream mounted)."""
    try:
        with os.scandir(workspace) as entries:
            return [workspace / entry.name for _, entry in zip(range(MAX_ENTRIES), entries, strict=False)
                    if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def host_folder(container_dir: str, *, docker_dir: str, workspace: Path | None,
                children: Callable[[Path], list[Path]] = _children) -> Path:
    """The host folder upstream mounted at `container_dir` (its mount rules, in reverse);
    `Unmappable` when its files do not say."""
    path, base = posixpath.normpath(container_dir), posixpath.normpath(docker_dir).rstrip("/") or "/"
    if workspace is not None:
        mirror = posixpath.join(base, workspace.name)
        if path == mirror or path.startswith(mirror + "/"):
            return workspace / path[len(mirror):].lstrip("/")
    prefix = base if base.endswith("/") else base + "/"
    if not path.startswith(prefix):
        raise Unmappable(f"{container_dir} is not below upstream's DOCKER_DIR {docker_dir}")
    token, _, below = path[len(prefix):].partition("/")
    if workspace is None:
        raise Unmappable(f"upstream had no WORKSPACE_DIR: it recorded only the folder name '{token}', "
                         "not where that folder is on this host")
    matches = [child for child in children(workspace) if project_token(child) == token]
    if not matches:
        raise Unmappable(f"no folder '{token}' in upstream's WORKSPACE_DIR {workspace} (gone, or launched from "
                         "outside it: upstream recorded only its name)")
    if len(matches) > 1:
        raise Unmappable(f"several folders of {workspace} are '{token}' to upstream: "
                         f"{', '.join(sorted(child.name for child in matches))}")
    return matches[0] / below if below else matches[0]


@dataclasses.dataclass(frozen=True)
class Gathered:
    """What the upstream files say: each slot file with its container folder, or why not."""

    found: tuple[tuple[SlotFile, str], ...]
    unmapped: tuple[Unmapped, ...]


def gather(layout: UpstreamLayout) -> Gathered:
    """Read every slot file and the session each names (synchronous, bounded reads)."""
    found: list[tuple[SlotFile, str]] = []
    unmapped: list[Unmapped] = []
    for tool, workdirs in (("claude", claude_workdirs), ("opencode", opencode_workdirs)):
        slots, refused = read_slot_files(layout.state_home, tool)
        unmapped += refused
        folders = workdirs(layout.state_home, [slot.session_id for slot in slots])
        for slot in slots:
            folder = folders.get(slot.session_id, Unmappable("its session was not found"))
            if isinstance(folder, Unmappable):
                unmapped.append(Unmapped(slot.label, f"session {slot.session_id}: {folder}"))
            else:
                found.append((slot, folder))
    return Gathered(tuple(found), tuple(unmapped))


# -- mapping to this install's projects ---------------------------------------------------

Locator = Callable[[Path], tuple[str, str]]


def our_location(environ: Mapping[str, str], user_home: Path) -> Locator:
    """host folder -> (project, workdir) exactly as a launch from that folder would record
    them (with this install's config, already written); `ConfigError` for a refused folder."""
    def locate(folder: Path) -> tuple[str, str]:
        location = locate_project(folder, environ=environ, cwd=folder, user_home=user_home)
        docker_dir = check_docker_dir(location.loaded.config.docker_dir)
        layout = project_layout(location.launch_dir, location.workspace, docker_dir, location.identity)
        return str(location.identity.root), layout.workdir

    return locate


def map_slots(gathered: Gathered, layout: UpstreamLayout, locate: Locator) -> tuple[list[Mapped], list[Unmapped]]:
    """Give each found slot its project, or say why it has none."""
    mapped: list[Mapped] = []
    unmapped = list(gathered.unmapped)
    for slot, container_dir in gathered.found:
        try:
            folder = host_folder(container_dir, docker_dir=layout.docker_dir, workspace=layout.workspace)
            if not folder.is_dir():
                raise Unmappable(f"its folder {folder} (from {container_dir}) does not exist on this host")
            project, workdir = locate(folder)
        except Unmappable as reason:
            unmapped.append(Unmapped(slot.label, f"session {slot.session_id}: {reason}"))
            continue
        except ConfigError as error:
            unmapped.append(Unmapped(slot.label, f"session {slot.session_id}: {error}"))
            continue
        mapped.append(Mapped(slot, project, workdir, container_dir))
    return mapped, unmapped


# -- saving --------------------------------------------------------------------------------


def _row(item: Mapped) -> SavedSlot:
    """The state store's row of a mapped slot: saved when upstream last wrote its file."""
    return SavedSlot(tool=item.slot.tool, project=item.project, slot=item.slot.slot, session_id=item.slot.session_id,
                     workdir=item.workdir, updated_at=item.slot.saved_at)


async def save_slots(state_home: Path, mapped: Sequence[Mapped]) -> tuple[list[Mapped], list[Mapped]]:
    """Write the mapped slots to the state store (created if missing) in ONE transaction
    (`StateStore.import_slots`); (saved, kept): kept = this install had already saved that slot."""
    async with StateStore.open(state_home) as store:  # creates the database and its schema
        if not mapped:
            return [], []
        rows = [_row(item) for item in mapped]
        inserted = {id(row) for row in await store.import_slots(rows)}
    saved = [item for item, row in zip(mapped, rows, strict=True) if id(row) in inserted]
    kept = [item for item, row in zip(mapped, rows, strict=True) if id(row) not in inserted]
    return saved, kept


def session_notes(state_home: Path, layout: UpstreamLayout, saved: Sequence[Mapped]) -> list[str]:
    """Make the saved slots' sessions findable where this install can (and say where not).

    A tool's state is per project here (`launch.identity.project_state_home`). Claude's
    sessions of upstream's shared folder are moved into their project by a launch — after it
    has looked for the slot's session; when upstream's state folder is this install's, the
    import moves them now (the same adoption a launch does), so the first `-c --slot N` finds
    its session. OpenCode's sessions stay in upstream's one shared database."""
    notes: list[str] = []
    same_home = layout.state_home.resolve() == state_home.resolve()
    for item in saved:
        if item.slot.tool == "claude" and same_home:
            prepare_state_folders(Tool.CLAUDE, state_home, project_state_home(state_home, item.project),
                                  ssh=False, workdir=item.workdir)
        elif item.slot.tool == "claude":
            notes.append(f"{item.slot.label} of {item.project}: its session stays in {layout.state_home} — with "
                         f"LLM_DOCKER_HOME={layout.state_home} the first launch of the project moves it in")
        else:
            notes.append(f"{item.slot.label} of {item.project}: its session stays in upstream's shared "
                         f"opencode.db, which per-project state does not read — `ocd -c --slot "
                         f"{item.slot.slot}` starts a fresh one")
    return notes


async def _import(state_home: Path, layout: UpstreamLayout, locate: Locator) -> SlotImport:
    try:
        gathered = await run_bounded(lambda: gather(layout), READ_SECONDS)
    except TimeoutError:
        raise ConfigError(f"upstream's state in {layout.state_home} could not be read within "
                          f"{READ_SECONDS:g} s") from None
    mapped, unmapped = map_slots(gathered, layout, locate)
    saved, kept = await save_slots(state_home, mapped)
    notes = await anyio.to_thread.run_sync(lambda: session_notes(state_home, layout, saved))
    return SlotImport(tuple(saved), tuple(kept), tuple(unmapped), tuple(notes))


def import_slots(state_home: Path, layout: UpstreamLayout, locate: Locator) -> SlotImport:
    """Read upstream's slot files, map them to projects and save them (one event loop)."""
    return anyio.run(_import, state_home, layout, locate, backend="asyncio")


def checkout_files(checkout: Path) -> UpstreamFiles:
    """`read_checkout` in a bounded daemon thread: a hung file system cannot hang `init`."""
    async def read() -> UpstreamFiles:
        try:
            return await run_bounded(lambda: read_checkout(checkout), READ_SECONDS)
        except TimeoutError:
            raise ConfigError(f"{checkout}: not read within {READ_SECONDS:g} s") from None

    return anyio.run(read, backend="asyncio")
