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

All functions here are synchronous file reads; the supervisor runs them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from launch.identity import claude_session_dir_name

CLAUDE_PROJECTS = "claude/.claude/projects"
OPENCODE_DATABASE = "opencode/.local/share/opencode/opencode.db"
CLOCK_SLACK_SECONDS = 1.0


def claude_session_folder(state_home: Path, workdir: str) -> Path:
    return state_home / CLAUDE_PROJECTS / claude_session_dir_name(workdir)


def opencode_database(state_home: Path) -> Path:
    return state_home / OPENCODE_DATABASE


def last_event_session(events: Path) -> str | None:
    """The session id of the last well-formed line of the events file."""
    try:
        lines = events.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    for line in reversed(lines):
        try:
            session = json.loads(line).get("session_id")
        except (ValueError, AttributeError):
            continue
        if isinstance(session, str) and session:
            return session
    return None


def claude_written_last(folder: Path, since: float, exclude: Iterable[str] = ()) -> str | None:
    excluded = set(exclude)
    best: tuple[float, str] | None = None
    try:
        entries = list(folder.glob("*.jsonl"))
    except OSError:
        return None
    for path in entries:
        session = path.stem
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if session in excluded or modified < since - CLOCK_SLACK_SECONDS:
            continue
        if best is None or modified > best[0]:
            best = (modified, session)
    return best[1] if best else None


def _open_read_only(database: Path) -> sqlite3.Connection | None:
    if not database.is_file():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def opencode_written_last(database: Path, directory: str, since: float,
                          exclude: Iterable[str] = ()) -> str | None:
    connection = _open_read_only(database)
    if connection is None:
        return None
    excluded = set(exclude)
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(session)")}
        if not {"id", "directory", "time_created"} <= columns:
            return None
        stamp = "time_updated" if "time_updated" in columns else "time_created"
        rows = connection.execute(
            f"SELECT id FROM session WHERE directory=? AND {stamp} >= ? ORDER BY {stamp} DESC",  # noqa: S608
            (directory, int((since - CLOCK_SLACK_SECONDS) * 1000)))
        return next((row[0] for row in rows if row[0] not in excluded), None)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def session_exists(tool: str, state_home: Path, workdir: str, session_id: str) -> bool:
    """Whether the tool can resume `session_id` from `workdir`."""
    if tool == "claude":
        return (claude_session_folder(state_home, workdir) / f"{session_id}.jsonl").is_file()
    connection = _open_read_only(opencode_database(state_home))
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


def discover_session(*, tool: str, state_home: Path, workdir: str, events: Path, since: float,
                     started_with: str | None, exclude: Iterable[str]) -> str | None:
    """The session this launch used last, or None if the tool never wrote one."""
    from_events = last_event_session(events)
    if from_events:
        return from_events
    if tool == "claude":
        found = claude_written_last(claude_session_folder(state_home, workdir), since, exclude)
    else:
        found = opencode_written_last(opencode_database(state_home), workdir, since, exclude)
    if found:
        return found
    if started_with and session_exists(tool, state_home, workdir, started_with):
        return started_with
    return None
