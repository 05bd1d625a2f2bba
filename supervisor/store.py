"""The state store: slots, per-terminal sessions, the launch journal and session claims.

One SQLite database (`$LLM_DOCKER_HOME/state.db`, WAL, every write a transaction) replaces
upstream's global `slot_N.id` files and the lock-free TSV (docs/upstream.md#slot-state):

* `slots` is keyed by (tool, project, slot), so slots never leak across projects;
* `terminal_sessions` is keyed by (tool, project, terminal) for `-c` without a slot;
* `launches` is the journal: a row is written before the container starts and marked
  finished after the slot is saved, so a launcher killed with SIGKILL leaves enough behind
  for the guardian, or the next invocation, to finish the save;
* `claims` gives every discovered session to exactly one launch, so two slots started at
  once in one folder never take each other's session.

`project` is the resolved host path of the project root (two folders of the same name are
different projects).

The journal is also the slot lease: an unfinished row of (tool, project, slot) whose
launcher is alive holds the slot, and `record_launches` checks and inserts in ONE
`BEGIN IMMEDIATE` transaction, so two launches of one slot at the same instant cannot both
get it (`SlotBusy`).

Every SQLite failure (at open, in a transaction, in a read) surfaces as ONE `StateError`
with a one-line message naming the file and the fix; callers print it and exit with its
`exit_code` (2, `launch.errors`). No transaction ever waits on an agent-written file: session discovery runs
before `finish_launch`, which only decides and records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import anyio

from launch import errors

DATABASE = "state.db"

#: The state database cannot be used; the message is one line: the file and the fix (exit 2).
#: The one `launch.errors.StateError`, named here too because this module raises it.
StateError = errors.StateError


class SlotBusy(Exception):
    """The slot is held by an unfinished launch; `alive` is False when its launcher is dead
    (the caller recovers it and tries again)."""

    def __init__(self, holder: Launch, *, alive: bool) -> None:
        super().__init__(f"slot {holder.slot} is held by {holder.run_id}")
        self.holder = holder
        self.alive = alive


class SlotMoved(Exception):
    """A slot's saved session changed after the launch resolved it: resolve again."""


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free == 0
    except OSError:
        return False


def state_error(path: Path, error: BaseException) -> StateError:
    """The one-line `StateError` for a failure of the database `path`."""
    detail = str(error) or type(error).__name__
    code = getattr(error, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    folder = path.parent
    os_errno = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if primary == sqlite3.SQLITE_FULL or os_errno == errno.ENOSPC or (
            primary == sqlite3.SQLITE_IOERR and _disk_full(folder)):
        return StateError(f"state database {path}: the disk is full — free space; "
                          "the slot's save finishes on the next launch")
    if primary in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StateError(f"state database {path} is corrupt ({detail}) — move it aside: mv {path} {path}.broken")
    read_only = primary == sqlite3.SQLITE_READONLY or os_errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    if read_only or primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        # SQLite gives -wal and -shm the database's mode: a read-only state.db has read-only companions
        companions = (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm"), folder)
        blocked = [str(target) for target in companions if target.exists() and not os.access(target, os.W_OK)]
        if read_only or blocked:
            fix = f"chmod u+w {' '.join(blocked)}" if blocked else f"remount {folder} read-write"
            return StateError(f"state database {path} is read-only ({detail}) — make it writable "
                              f"(its folder too: SQLite's WAL writes next to it): {fix}")
    return StateError(f"state database {path}: {detail}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS slots (
    tool TEXT NOT NULL, project TEXT NOT NULL, slot INTEGER NOT NULL,
    session_id TEXT NOT NULL, workdir TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (tool, project, slot));
CREATE TABLE IF NOT EXISTS terminal_sessions (
    tool TEXT NOT NULL, project TEXT NOT NULL, terminal TEXT NOT NULL,
    session_id TEXT NOT NULL, workdir TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (tool, project, terminal));
CREATE TABLE IF NOT EXISTS launches (
    run_id TEXT PRIMARY KEY, tool TEXT NOT NULL, project TEXT NOT NULL, workdir TEXT NOT NULL,
    slot INTEGER, terminal TEXT NOT NULL, launcher_pid INTEGER NOT NULL, launcher_start TEXT NOT NULL,
    container TEXT NOT NULL, session_kind TEXT NOT NULL, session_id TEXT,
    started_at REAL NOT NULL, finished_at REAL);
CREATE TABLE IF NOT EXISTS claims (
    tool TEXT NOT NULL, session_id TEXT NOT NULL, run_id TEXT NOT NULL,
    PRIMARY KEY (tool, session_id));
"""


@dataclasses.dataclass(frozen=True)
class Launch:
    """A journal row: one container of one launch."""

    run_id: str
    tool: str
    project: str
    workdir: str
    slot: int | None
    terminal: str
    launcher_pid: int
    launcher_start: str
    container: str
    session_kind: str
    session_id: str | None
    started_at: float
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True)
class SavedSlot:
    tool: str
    project: str
    slot: int
    session_id: str
    workdir: str
    updated_at: float


async def _execute_fully(db: aiosqlite.Connection, sql: str) -> None:
    async with db.execute(sql) as cursor:
        await cursor.fetchall()


async def _retry_when_locked(db: aiosqlite.Connection, statement: Callable[[], Awaitable[object]], *,
                             attempts: int = 200) -> None:
    """Run `statement`, retrying for up to ~10 s while SQLite says the database is locked.

    Two launchers creating the database at the same moment can get SQLITE_BUSY for the
    switch to WAL and the schema without SQLite consulting the busy handler.
    """
    for attempt in range(attempts):
        try:
            await statement()
            return
        except sqlite3.OperationalError as error:
            if db.in_transaction:
                await db.rollback()
            if "locked" not in str(error) and "busy" not in str(error) or attempt == attempts - 1:
                raise
            await anyio.sleep(0.05)


class StateStore:
    """The state database, shared by every task of a supervisor through ONE connection.

    A connection carries one transaction at a time, so every use of it — a transaction or
    a single read — holds `_lock`: N slots saving at the same moment take turns instead of
    nesting `BEGIN`s.
    """

    def __init__(self, connection: aiosqlite.Connection, path: Path) -> None:
        self._db = connection
        self._lock = anyio.Lock()
        self.path = path

    @classmethod
    @asynccontextmanager
    async def open(cls, state_home: Path) -> AsyncIterator[StateStore]:
        """Open (and create) the database; `StateError` if it cannot be used."""
        path = state_home / DATABASE
        opened = False
        try:
            state_home.mkdir(mode=0o700, parents=True, exist_ok=True)
            async with aiosqlite.connect(path, timeout=30, isolation_level=None) as db:
                await db.execute("PRAGMA busy_timeout=30000")
                await _retry_when_locked(db, lambda: _execute_fully(db, "PRAGMA journal_mode=WAL"))
                # One write transaction taken up front: statements that upgrade a read snapshot
                # to a write can get SQLITE_BUSY without the busy handler ever being asked.
                await _retry_when_locked(db, lambda: db.executescript(f"BEGIN IMMEDIATE; {SCHEMA}; COMMIT;"))
                opened = True
                yield cls(db, path)
        except (sqlite3.Error, OSError) as error:
            if opened and not isinstance(error, sqlite3.Error):
                raise  # an OSError of the caller's own work inside the block is not ours
            raise state_error(path, error) from error

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise state_error(self.path, error) from error

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            with self._errors():
                yield self._db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT; on any failure (COMMIT on a full disk included) the
        transaction is rolled back, so the journal row stays as it was."""
        async with self._lock:
            with self._errors():
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    await self._db.execute("COMMIT")
                except BaseException:
                    with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                        if self._db.in_transaction:  # SQLite may have rolled back by itself (SQLITE_FULL)
                            await self._db.execute("ROLLBACK")
                    raise

    # -- sessions --------------------------------------------------------------------

    async def slot(self, tool: str, project: str, slot: int) -> SavedSlot | None:
        async with self._read() as db, db.execute(
            "SELECT tool, project, slot, session_id, workdir, updated_at FROM slots "
            "WHERE tool=? AND project=? AND slot=?", (tool, project, slot)) as cursor:
            row = await cursor.fetchone()
        return SavedSlot(*row) if row else None

    async def terminal_session(self, tool: str, project: str, terminal: str) -> str | None:
        async with self._read() as db, db.execute(
            "SELECT session_id FROM terminal_sessions WHERE tool=? AND project=? AND terminal=?",
            (tool, project, terminal)) as cursor:
            row = await cursor.fetchone()
        return row[0] if row else None

    async def slots(self) -> list[SavedSlot]:
        async with self._read() as db, db.execute(
            "SELECT tool, project, slot, session_id, workdir, updated_at FROM slots "
            "ORDER BY tool, project, slot") as cursor:
            return [SavedSlot(*row) async for row in cursor]

    async def import_slots(self, rows: Sequence[SavedSlot]) -> list[SavedSlot]:
        """Add slots saved by another install (`llm-docker init --from-upstream`), all in ONE
        transaction; the rows actually inserted, in order. A slot this install has already
        saved is never overwritten (nor is an earlier row of `rows` for the same slot): a
        launch's own save is newer than anything an import brings."""
        inserted: list[SavedSlot] = []
        async with self._transaction() as db:
            for row in rows:
                async with db.execute(
                        "INSERT INTO slots (tool, project, slot, session_id, workdir, updated_at) "
                        "VALUES (?,?,?,?,?,?) ON CONFLICT (tool, project, slot) DO NOTHING",
                        dataclasses.astuple(row)) as cursor:
                    if cursor.rowcount == 1:
                        inserted.append(row)
        return inserted

    async def claimed_by_others(self, tool: str, run_id: str, since: float) -> set[str]:
        """Sessions owned by launches that overlapped this one in time (alive at some point
        after `since`): what they claimed and what they were started with."""
        async with self._read():
            return await self._claims(tool, run_id, since)

    async def _claims(self, tool: str, run_id: str, since: float) -> set[str]:
        async with self._db.execute(
            "SELECT c.session_id FROM claims c JOIN launches l ON l.run_id = c.run_id "
            "WHERE c.tool=? AND c.run_id<>? AND (l.finished_at IS NULL OR l.finished_at >= ?) "
            "UNION SELECT session_id FROM launches WHERE tool=? AND run_id<>? AND session_id IS NOT NULL "
            "AND (finished_at IS NULL OR finished_at >= ?)",
            (tool, run_id, since, tool, run_id, since)) as cursor:
            return {row[0] async for row in cursor}

    # -- the journal -----------------------------------------------------------------

    async def record_launch(self, launch: Launch) -> None:
        """Write one journal row; a slot held by anyone else is `SlotBusy` (alive)."""
        await self.record_launches([launch])

    async def record_launches(self, launches: Sequence[Launch], *,
                              holder_alive: Callable[[Launch], bool] = lambda _: True,
                              resolved_since: float | None = None) -> None:
        """Take the slot leases of `launches` and write their journal rows — all or none,
        in one `BEGIN IMMEDIATE` transaction (two launches at the same instant serialise
        here, and the second sees the first's row).

        A slot is busy while an unfinished row of the same (tool, project, slot) exists:
        `SlotBusy(alive=holder_alive(row))` — the caller refuses if alive (or unknown, which
        `holder_alive` must report as alive), or recovers the dead holder and tries again.
        `SlotMoved` if a slot's saved session changed at or after `resolved_since` (the
        session the launch resolved from it is stale).
        """
        async with self._transaction() as db:
            for launch in launches:
                if launch.slot is None:
                    continue
                async with db.execute(
                        "SELECT * FROM launches WHERE tool=? AND project=? AND slot=? AND finished_at IS NULL "
                        "AND run_id<>? ORDER BY started_at", (launch.tool, launch.project, launch.slot,
                                                               launch.run_id)) as cursor:
                    holder = await cursor.fetchone()
                if holder is not None:
                    held = Launch(*holder)
                    raise SlotBusy(held, alive=holder_alive(held))
                if resolved_since is not None:
                    async with db.execute("SELECT updated_at FROM slots WHERE tool=? AND project=? AND slot=?",
                                          (launch.tool, launch.project, launch.slot)) as cursor:
                        saved = await cursor.fetchone()
                    if saved is not None and saved[0] >= resolved_since:
                        raise SlotMoved(launch.slot)
            for launch in launches:
                await db.execute("INSERT INTO launches VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 dataclasses.astuple(launch))
                if launch.session_id is not None and launch.session_kind == "fresh":
                    await db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?)",
                                     (launch.tool, launch.session_id, launch.run_id))

    async def unfinished_launches(self) -> list[Launch]:
        async with self._read() as db, db.execute(
            "SELECT * FROM launches WHERE finished_at IS NULL ORDER BY started_at") as cursor:
            return [Launch(*row) async for row in cursor]

    async def launch(self, run_id: str) -> Launch | None:
        async with self._read() as db, db.execute("SELECT * FROM launches WHERE run_id=?", (run_id,)) as cursor:
            row = await cursor.fetchone()
        return Launch(*row) if row else None

    async def finish_launch(self, launch: Launch,
                            choose: Callable[[Collection[str]], str | None]) -> tuple[bool, str | None]:
        """Save the launch's session to its slot and terminal, claim it and close the
        journal row, all in one short write transaction: two launches finishing at the same
        moment see each other's claims, so they never take the same session.

        `choose` is given the sessions other overlapping launches own (read inside the
        transaction) and picks from what discovery found BEFORE it: it must not do I/O —
        nothing agent-written is read while the database is locked. Returns (False, None)
        if someone else finished this launch first.
        """
        now = time.time()
        async with self._transaction() as db:
            async with db.execute("SELECT finished_at FROM launches WHERE run_id=?", (launch.run_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None or row[0] is not None:
                return False, None
            session_id = choose(await self._claims(launch.tool, launch.run_id, launch.started_at))
            await db.execute("UPDATE launches SET finished_at=? WHERE run_id=?", (now, launch.run_id))
            if session_id is None:
                return True, None
            await db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?)",
                             (launch.tool, session_id, launch.run_id))
            if launch.slot is not None:
                await db.execute("INSERT OR REPLACE INTO slots VALUES (?,?,?,?,?,?)",
                                 (launch.tool, launch.project, launch.slot, session_id, launch.workdir, now))
            await db.execute("INSERT OR REPLACE INTO terminal_sessions VALUES (?,?,?,?,?,?)",
                             (launch.tool, launch.project, launch.terminal, session_id, launch.workdir, now))
        return True, session_id
