"""`llm-docker doctor`: is the state database sound — without ever writing to it.

`$LLM_DOCKER_HOME/state.db` (`supervisor/store.py`) is opened read-only through SQLite's
URI (`mode=ro`); when no write-ahead log is beside it (nobody has it open), `immutable=1`
too, so not even the `-wal`/`-shm` companions appear. `PRAGMA quick_check` reads every
page; the tables must have the columns the store reads (`SELECT *` into its rows). A
progress handler interrupts SQLite past the time bound: a huge or stuck file cannot hang
doctor, and no thread is left behind.

Runs in a worker thread (`sqlite3` blocks); everything here is synchronous.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from supervisor.doctor.report import Finding, Status, fail, ok, warn

# the store's own DDL: the one definition of its tables
from supervisor.store import DATABASE, SCHEMA as STORE_SCHEMA

STATE = "state"
#: SQLite calls the progress handler every this many virtual-machine instructions.
_PROGRESS_STEPS = 1_000


def examine_state(state_home: Path, seconds: float) -> list[Finding]:
    path = state_home / DATABASE
    if not path.exists():
        return [ok(STATE, f"{path} not created yet (the first launch makes it)")]
    if path.is_symlink() or not path.is_file():
        return [fail(STATE, f"{path} is not a regular file", f"move it aside: mv {path} {path}.broken")]
    wal = path.with_name(f"{path.name}-wal")
    immutable = not wal.exists()
    found = _examine(path, seconds, immutable=immutable)
    if immutable and wal.exists() and any(finding.status is not Status.OK for finding in found):
        # a launch opened it meanwhile (its log appeared): judge again, with SQLite's locking
        found = _examine(path, seconds, immutable=False)
    return found


def _examine(path: Path, seconds: float, *, immutable: bool) -> list[Finding]:
    deadline = time.monotonic() + seconds
    uri = f"{path.absolute().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=min(seconds, 5.0), isolation_level=None)
    except sqlite3.Error as error:
        return [_failure(path, error)]
    try:
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
        problems = [line for row in connection.execute("PRAGMA quick_check(20)").fetchall()
                    for line in str(row[0]).splitlines() if line.strip() and not line.startswith("***")]
        if problems != ["ok"]:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            return [fail(STATE, f"{path} is corrupt: {'; '.join(problems[:3])}{more}", _move_aside(path))]
        missing = _schema_problems(connection)
        if missing:
            return [fail(STATE, f"{path} has not the tables llm-docker reads: {'; '.join(missing)}",
                         _move_aside(path))]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        launches = connection.execute("SELECT count(*) FROM launches WHERE finished_at IS NULL").fetchone()[0]
    except sqlite3.Error as error:
        if "interrupted" in str(error):
            return [warn(STATE, f"{path}: the check did not finish within {seconds:g} s",
                         "run `llm-docker doctor` again when no launch is starting")]
        return [_failure(path, error)]
    finally:
        connection.close()
    return [ok(STATE, f"{path}: intact (quick_check), schema as expected (user_version {version}), "
                      f"{launches} unfinished launch(es) in the journal")]


def _schema_problems(connection: sqlite3.Connection) -> list[str]:
    """Each table the store defines, with its columns in order, must be there."""
    expected = sqlite3.connect(":memory:")
    try:
        expected.executescript(STORE_SCHEMA)
        tables = [row[0] for row in expected.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        problems = []
        for table in tables:
            want = [row[1] for row in expected.execute(f"PRAGMA table_info({table})")]
            have = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
            if not have:
                problems.append(f"no table {table}")
            elif have != want:
                problems.append(f"{table} has columns {', '.join(have)} (expected {', '.join(want)})")
        return problems
    finally:
        expected.close()


def _failure(path: Path, error: sqlite3.Error) -> Finding:
    code = getattr(error, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return fail(STATE, f"{path} is corrupt ({error})", _move_aside(path))
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return warn(STATE, f"{path} is busy ({error})", "run `llm-docker doctor` again in a moment")
    return fail(STATE, f"{path} cannot be read ({error})",
                f"check its owner and mode (ls -l {path}); a launch needs it readable and writable")


def _move_aside(path: Path) -> str:
    return (f"mv {path} {path}.broken (and its -wal/-shm if there) — the next launch makes a new one; "
            "the saved slots' sessions are forgotten, the sessions themselves stay")
