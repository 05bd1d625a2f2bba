"""Reading agent-written files (`supervisor.untrusted`, `supervisor.sessions`): no symlink is
followed, nothing but a regular file is read, reads are bounded in bytes and time, and a
stuck read never blocks the loop nor the process's exit. Backend-neutral: asyncio and trio."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from supervisor import sessions
from supervisor.untrusted import TAIL_BYTES, Refused, open_directory, read_tail, run_bounded

REPO = Path(__file__).parents[2]
EVENT = '{"session_id": "%s"}\n'


# -- read_tail -------------------------------------------------------------------------

def test_read_tail_returns_the_end_of_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 10 + b"b" * TAIL_BYTES)
    data, size = read_tail(path)
    assert size == 10 + TAIL_BYTES and data == b"b" * TAIL_BYTES
    with pytest.raises(FileNotFoundError):
        read_tail(tmp_path / "missing")


def test_a_huge_file_is_read_only_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with open(path, "wb") as handle:  # 4 GiB, sparse: a full read would need 4 GiB of memory
        handle.truncate(4 << 30)
        handle.seek((4 << 30) - 100)
        handle.write(("\n" + EVENT % "tail").encode())
    data, size = read_tail(path)
    assert size > 4 << 30 - 1 and len(data) == TAIL_BYTES
    assert sessions.last_event_session(path) == "tail"


@pytest.mark.parametrize("target", ["/dev/zero", "host-secret"])
def test_a_symlink_is_refused_not_followed(tmp_path: Path, target: str) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text(EVENT % "stolen")
    link = tmp_path / "events.jsonl"
    link.symlink_to(secret if target == "host-secret" else Path(target))
    with pytest.raises(Refused, match="symlink"):
        read_tail(link)
    session, problem = sessions.events_evidence(link)
    assert session is None and problem == "the events file is a symlink"


@pytest.mark.anyio
async def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    with anyio.fail_after(20):  # liveness bound: the old code blocked here forever
        session, problem = await run_bounded(lambda: sessions.events_evidence(fifo), 15)
    assert session is None
    assert problem == "the events file is not a regular file (FIFO)"


def test_devices_and_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="character device"):
        read_tail(Path("/dev/null"))
    with pytest.raises(Refused, match="directory"):
        read_tail(tmp_path)


def test_events_tail_skips_the_cut_first_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    # an event line that straddles the start of the tail must not be half-parsed
    cut = EVENT % "early"
    path.write_text(cut + "x" * (TAIL_BYTES - len(cut) // 2) + "\n" + EVENT % "late" + "garbage\n")
    assert sessions.last_event_session(path) == "late"
    path.write_text(EVENT % "first" + "x" * (TAIL_BYTES * 3))  # 192 KiB without a newline
    session, problem = sessions.events_evidence(path)
    assert session is None and problem is not None and "no session in its last 64 KiB" in problem



@pytest.mark.parametrize("forged", ["\\u001b]52;c;cm0gLXJmIH4K\\u0007", "../../other", "--settings=/tmp/x", "a b",
                                    "x" * 129])
def test_a_forged_session_id_is_no_session(tmp_path: Path, forged: str) -> None:
    """Session ids are printed, stored, put in file names and handed back as `--resume ID`:
    escape sequences, paths, flags are not ids, wherever the agent writes them."""
    events = tmp_path / "events.jsonl"
    events.write_text(EVENT % "9b2f7c1e-0a4d-4e8b-b1f2-3c4d5e6f7a8b" + EVENT % forged)
    assert sessions.last_event_session(events) == "9b2f7c1e-0a4d-4e8b-b1f2-3c4d5e6f7a8b"
    trusted, folder = _sessions_folder(tmp_path)
    if "/" not in forged:
        (folder / f"{forged}.jsonl").write_text("{}\n")
    (folder / "ses_ok.jsonl").write_text("{}\n")
    assert sessions.claude_written(folder, time.time() - 60, trusted=trusted) == ["ses_ok"]
    database = _opencode(tmp_path)
    connection = sqlite3.connect(database)
    connection.execute("INSERT INTO session VALUES (?, '/w', 9e15, 9e15)", (forged,))
    connection.commit()
    connection.close()
    assert sessions.opencode_written(database, "/w", time.time() - 60) == ["ses_a"]


# -- folders and listings --------------------------------------------------------------

def _sessions_folder(tmp_path: Path) -> tuple[Path, Path]:
    trusted = tmp_path / "claude" / ".claude"
    folder = trusted / "projects" / "-root-app"
    folder.mkdir(parents=True)
    return trusted, folder


def test_claude_listing_ignores_symlinks_and_special_files(tmp_path: Path) -> None:
    trusted, folder = _sessions_folder(tmp_path)
    (folder / "real.jsonl").write_text("{}\n")
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    (folder / "linked.jsonl").symlink_to(outside)
    os.mkfifo(folder / "fifo.jsonl")
    (folder / "dir.jsonl").mkdir()
    assert sessions.claude_written(folder, time.time() - 60, trusted=trusted) == ["real"]


def test_a_symlinked_folder_below_the_mount_is_refused(tmp_path: Path) -> None:
    trusted, folder = _sessions_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "-root-app"
    elsewhere.mkdir(parents=True)
    (elsewhere / "planted.jsonl").write_text("{}\n")
    projects = trusted / "projects"
    folder.rmdir()
    projects.rmdir()
    projects.symlink_to(elsewhere.parent)  # the agent swaps `projects` for a link
    with pytest.raises(Refused, match="symlink"):
        open_directory(folder, trusted=trusted)
    assert sessions.claude_written(folder, time.time() - 60, trusted=trusted) == []
    state_home = tmp_path
    assert not sessions.session_exists("claude", state_home, "/root/app", "planted")


def test_claude_session_exists_refuses_a_symlinked_file(tmp_path: Path) -> None:
    state_home = tmp_path
    folder = sessions.claude_session_folder(state_home, "/root/app")
    folder.mkdir(parents=True)
    (folder / "ok.jsonl").write_text("{}\n")
    (folder / "link.jsonl").symlink_to(folder / "ok.jsonl")
    assert sessions.session_exists("claude", state_home, "/root/app", "ok")
    assert not sessions.session_exists("claude", state_home, "/root/app", "link")


# -- opencode.db -----------------------------------------------------------------------

def _opencode(state_home: Path) -> Path:
    database = sessions.opencode_database(state_home)
    database.parent.mkdir(parents=True)
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE session (id TEXT, directory TEXT, time_created INTEGER, time_updated INTEGER)")
    now = int(time.time() * 1000)
    connection.execute("INSERT INTO session VALUES ('ses_a', '/w', ?, ?)", (now, now))
    connection.commit()
    connection.close()
    return database


@pytest.mark.parametrize("which", ["db", "-wal", "-shm"])
def test_opencode_database_symlinks_are_refused(tmp_path: Path, which: str) -> None:
    database = _opencode(tmp_path)
    assert sessions.opencode_written(database, "/w", time.time() - 60) == ["ses_a"]
    if which == "db":
        real = database.with_name("real.db")
        database.rename(real)
        database.symlink_to(real)
    else:
        database.with_name(database.name + which).symlink_to("/dev/zero")
    assert sessions.opencode_written(database, "/w", time.time() - 60) == []
    assert not sessions.session_exists("opencode", tmp_path, "/w", "ses_a")


@pytest.mark.anyio
async def test_an_endless_opencode_query_is_aborted(tmp_path: Path) -> None:
    """The agent owns opencode.db: `session` can be a view that never ends."""
    database = sessions.opencode_database(tmp_path)
    database.parent.mkdir(parents=True)
    connection = sqlite3.connect(database)
    connection.execute("CREATE VIEW session AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                       "SELECT 'ses_' || x AS id, '/w' AS directory, x AS time_created, 9e15 AS time_updated FROM n")
    connection.close()
    with anyio.fail_after(30):  # liveness bound; the query itself is cut at QUERY_SECONDS
        found = await run_bounded(lambda: sessions.opencode_written(database, "/w", 0), 25)
    assert found == []


# -- discovery -------------------------------------------------------------------------

@pytest.mark.anyio
async def test_hostile_events_file_falls_back_to_the_tools_files(tmp_path: Path) -> None:
    state_home = tmp_path
    folder = sessions.claude_session_folder(state_home, "/root/app")
    folder.mkdir(parents=True)
    (folder / "mine.jsonl").write_text("{}\n")
    events = tmp_path / "runs" / "c" / "events.jsonl"
    events.parent.mkdir(parents=True)
    os.mkfifo(events)
    with anyio.fail_after(30):
        found = await sessions.discover_bounded(tool="claude", state_home=state_home, workdir="/root/app",
                                                events=events, since=time.time() - 60, started_with=None)
    assert found.from_events is None and found.written == ("mine",)
    assert found.problem == "the events file is not a regular file (FIFO)"
    assert found.choose(set()) == "mine" and found.choose({"mine"}) is None
    events.unlink()
    events.write_text(EVENT % "exact")
    found = await sessions.discover_bounded(tool="claude", state_home=state_home, workdir="/root/app",
                                            events=events, since=time.time() - 60, started_with=None)
    assert found.choose({"exact"}) == "exact" and found.problem is None


# -- run_bounded -----------------------------------------------------------------------

@pytest.mark.anyio
async def test_run_bounded_returns_raises_and_times_out() -> None:
    assert await run_bounded(lambda: 42, 5) == 42
    with pytest.raises(ZeroDivisionError):
        await run_bounded(lambda: 1 // 0, 5)
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            await run_bounded(release.wait, 0.2)
    finally:
        release.set()


def test_a_stuck_read_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """A worker blocked for good (opening a FIFO nobody writes, without O_NONBLOCK) is
    abandoned at its bound and the interpreter still exits."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = (
        "import anyio, os, sys\n"
        "from supervisor.untrusted import run_bounded\n"
        "async def main():\n"
        "    try:\n"
        f"        await run_bounded(lambda: os.open({str(fifo)!r}, os.O_RDONLY), 0.5)\n"
        "    except TimeoutError:\n"
        "        print('timed out')\n"
        "anyio.run(main, backend=sys.argv[1])\n"
    )
    for backend in ("asyncio", "trio"):
        result = subprocess.run([sys.executable, "-c", script, backend], cwd=REPO, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0 and result.stdout.strip() == "timed out", (backend, result.stderr)
