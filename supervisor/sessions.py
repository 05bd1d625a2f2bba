"""Which session a launch used: read from the tools' own data on the host, never by
`docker exec` into the container.

Evidence, strongest first:

1. the launch's events file, where the image's hooks (Claude Code's SessionStart hook,
   OpenCode's plugin) append `{"session_id": ...}` each time the tool opens a session —
   exact, including `/clear` and `/resume` switches;
2. the session this launch's workdir wrote last within the launch's time window and that
   no overlapping launch owns (Claude: `.jsonl` files in the workdir's session folder;
   OpenCode: rows of `session` in `opencode.db` for this directory);
3. the session the launch was started with (the UUID minted for a fresh Claude session,
   or the id it resumed), if the tool actually wrote it.

All of this is agent-written data (see `supervisor.untrusted`): every read goes through
O_NOFOLLOW opens, regular-file checks and byte/entry/time bounds. A hostile file costs at
most that launch's session attribution (`Discovery.problem` says why), never a hang.

All functions here are synchronous file reads; the supervisor runs them in a bounded
daemon thread (`discover_bounded`), BEFORE the write transaction that saves the result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import time
from collections.abc import Collection, Iterable
from pathlib import Path

from launch.identity import claude_session_dir_name
from supervisor.untrusted import (
    TAIL_BYTES,
    Refused,
    open_directory,
    read_tail,
    regular_entries,
    regular_or_missing,
    run_bounded,
)

CLAUDE_HOME = "claude/.claude"
CLAUDE_PROJECTS = f"{CLAUDE_HOME}/projects"
OPENCODE_FOLDER = "opencode/.local/share/opencode"
OPENCODE_DATABASE = f"{OPENCODE_FOLDER}/opencode.db"
CLOCK_SLACK_SECONDS = 1.0
#: How long one query of opencode.db may run (a hostile DB can make `session` an endless view).
QUERY_SECONDS = 2.0
#: Bounds of the two discovery steps, whatever the agent did to its files.
EVENTS_SECONDS = 5.0
TOOL_FILES_SECONDS = 10.0
#: At most this many candidate sessions are kept from the tool's own files.
MAX_CANDIDATES = 256
#: What a session id may be (Claude Code: a UUID; OpenCode: `ses_…`): it is printed to the
#: user's terminal, stored, used in file names and handed back as `--resume ID` — an agent's
#: id with escape sequences, a path or a leading `-` is no session.
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


@dataclasses.dataclass(frozen=True)
class Discovery:
    """What the files say about a finished launch; `choose` picks its session once the
    claims of overlapping launches are known (inside the saving transaction)."""

    from_events: str | None = None
    written: tuple[str, ...] = ()  # written in the launch's window, newest first
    started_with: str | None = None  # the session it was started with, if the tool wrote it
    problem: str | None = None  # why the events file (or the tool's files) could not be used

    def choose(self, claimed: Collection[str]) -> str | None:
        if self.from_events:
            return self.from_events
        return next((session for session in self.written if session not in claimed), self.started_with)


def claude_session_folder(state_home: Path, workdir: str) -> Path:
    return state_home / CLAUDE_PROJECTS / claude_session_dir_name(workdir)


def opencode_database(state_home: Path) -> Path:
    return state_home / OPENCODE_DATABASE


def last_event_session(events: Path) -> str | None:
    """The session id of the last well-formed line within the last `TAIL_BYTES` of the
    events file; None if missing. Refused if it is a symlink or not a regular file."""
    try:
        data, size = read_tail(events)
    except (FileNotFoundError, NotADirectoryError):
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > len(data) and lines:
        lines = lines[1:]  # the first line of a tail is cut
    for line in reversed(lines):
        try:
            session = json.loads(line).get("session_id")
        except (ValueError, AttributeError, RecursionError):
            continue
        if isinstance(session, str) and is_session_id(session):
            return session
    return None


def is_session_id(text: str) -> bool:
    return SESSION_ID.fullmatch(text) is not None


def events_evidence(events: Path) -> tuple[str | None, str | None]:
    """(session, problem) from the events file: the problem says why it was not usable."""
    try:
        session = last_event_session(events)
    except Refused as refused:
        return None, f"the events file {refused}"
    except OSError as error:
        return None, f"the events file cannot be read ({error.strerror})"
    if session is None:
        try:
            size = os.lstat(events).st_size
        except OSError:
            return None, None
        if size > TAIL_BYTES:
            return None, f"the events file has no session in its last {TAIL_BYTES // 1024} KiB ({size} bytes)"
    return session, None


def claude_written(folder: Path, since: float, *, trusted: Path | None = None) -> list[str]:
    """Sessions (`<id>.jsonl` regular files) of `folder` modified since `since`, newest
    first. Every component of `folder` below `trusted` (default: its parent) is opened
    without following symlinks; symlinked or special entries are ignored."""
    try:
        fd = open_directory(folder, trusted=folder.parent if trusted is None else trusted)
    except (OSError, Refused):
        return []
    try:
        found = [(info.st_mtime, name[: -len(".jsonl")]) for name, info in regular_entries(fd, ".jsonl")
                 if info.st_mtime >= since - CLOCK_SLACK_SECONDS and is_session_id(name[: -len(".jsonl")])]
    except OSError:
        return []
    finally:
        os.close(fd)
    return [session for _, session in sorted(found, reverse=True)[:MAX_CANDIDATES]]


def claude_written_last(folder: Path, since: float, exclude: Iterable[str] = ()) -> str | None:
    excluded = set(exclude)
    return next((session for session in claude_written(folder, since) if session not in excluded), None)


def _open_read_only(database: Path) -> sqlite3.Connection | None:
    """A read-only connection to the agent-written `database`, or None if it is missing.

    The database and its -wal/-shm must be regular files (lstat: a symlink is refused), and
    every statement is aborted after `QUERY_SECONDS` by a progress handler."""
    try:
        fd = os.open(database.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not regular_or_missing(database.name, fd):
            return None
        for suffix in ("-wal", "-shm"):
            regular_or_missing(database.name + suffix, fd)
    except (Refused, OSError):
        return None
    finally:
        os.close(fd)
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=QUERY_SECONDS)
    deadline = time.monotonic() + QUERY_SECONDS
    connection.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    return connection


def opencode_written(database: Path, directory: str, since: float) -> list[str]:
    """OpenCode sessions of `directory` updated since `since`, newest first."""
    try:
        connection = _open_read_only(database)
    except sqlite3.Error:
        return []
    if connection is None:
        return []
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(session)")}
        if not {"id", "directory", "time_created"} <= columns:
            return []
        # `stamp` is one of two fixed column names, never input: safe to format into the SQL
        stamp = "time_updated" if "time_updated" in columns else "time_created"
        rows = connection.execute(
            f"SELECT id FROM session WHERE directory=? AND {stamp} >= ? ORDER BY {stamp} DESC LIMIT ?",
            (directory, int((since - CLOCK_SLACK_SECONDS) * 1000), MAX_CANDIDATES)).fetchall()
        return [row[0] for row in rows if isinstance(row[0], str) and is_session_id(row[0])]
    except sqlite3.Error:
        return []
    finally:
        connection.close()


def opencode_written_last(database: Path, directory: str, since: float,
                          exclude: Iterable[str] = ()) -> str | None:
    excluded = set(exclude)
    return next((session for session in opencode_written(database, directory, since) if session not in excluded),
                None)


def session_exists(tool: str, state_home: Path, workdir: str, session_id: str) -> bool:
    """Whether the tool can resume `session_id` from `workdir` (agent-written data: a
    symlinked session file or database counts as absent)."""
    if tool == "claude":
        folder = claude_session_folder(state_home, workdir)
        try:
            fd = open_directory(folder, trusted=state_home / CLAUDE_HOME)
        except (OSError, Refused):
            return False
        try:
            return regular_or_missing(f"{session_id}.jsonl", fd)
        except (OSError, Refused):
            return False
        finally:
            os.close(fd)
    try:
        connection = _open_read_only(opencode_database(state_home))
    except sqlite3.Error:
        return False
    if connection is None:
        return False
    try:
        row = connection.execute("SELECT 1 FROM session WHERE id=? AND directory=?",
                                 (session_id, workdir)).fetchone()
        return row is not None
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def tool_evidence(*, tool: str, state_home: Path, workdir: str, since: float,
                  started_with: str | None) -> Discovery:
    """What the tool's own files say (steps 2 and 3), for when the events file says nothing."""
    if tool == "claude":
        written = claude_written(claude_session_folder(state_home, workdir), since, trusted=state_home / CLAUDE_HOME)
    else:
        written = opencode_written(opencode_database(state_home), workdir, since)
    exists = bool(started_with) and session_exists(tool, state_home, workdir, started_with or "")
    return Discovery(written=tuple(written), started_with=started_with if exists else None)


async def discover_bounded(*, tool: str, state_home: Path, workdir: str, events: Path, since: float,
                           started_with: str | None) -> Discovery:
    """Everything discovery needs, read in bounded daemon threads; never raises for what
    the agent did to its files, never takes longer than the two bounds."""
    try:
        from_events, problem = await run_bounded(lambda: events_evidence(events), EVENTS_SECONDS)
    except TimeoutError:
        from_events, problem = None, f"the events file could not be read within {EVENTS_SECONDS:g} s"
    if from_events:
        return Discovery(from_events=from_events)
    try:
        found = await run_bounded(lambda: tool_evidence(tool=tool, state_home=state_home, workdir=workdir,
                                                        since=since, started_with=started_with),
                                  TOOL_FILES_SECONDS)
    except TimeoutError:
        return Discovery(problem=f"the tool's session files could not be read within {TOOL_FILES_SECONDS:g} s")
    return dataclasses.replace(found, problem=problem)
