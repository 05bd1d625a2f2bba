"""Supervisor pieces that need no Docker: logs, terminal, process watching, session discovery,
and the state store. Backend-neutral pieces run on both asyncio and trio."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import time
import types
from pathlib import Path

import anyio
import pytest

from supervisor import sessions
from supervisor.store import Launch, StateStore
from supervisor.tasks import logs
from supervisor.tasks.watchdog import ExitWatch, PidfdUnavailable, wait_for_exit
from supervisor.terminal import NO_TTY, raw_mode, terminal_id, window_size
from testbed.processes import orphaned_watcher

REPO = Path(__file__).parents[2]


# -- logs (backend-neutral) -------------------------------------------------------------

def test_log_rotation_keeps_numbered_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "llm-docker.log"
    for index in range(100):
        logs.append_lines(path, [json.dumps({"n": index, "pad": "x" * 100})], limit=1024)
    backups = sorted(p.name for p in path.parent.glob("llm-docker.log.*"))
    assert backups == [f"llm-docker.log.{n}" for n in range(1, logs.BACKUPS + 1)]
    assert path.stat().st_size < 1024 + 200
    newest = json.loads(path.read_text().splitlines()[-1])
    assert newest["n"] == 99


def test_zero_limit_disables_the_file(tmp_path: Path) -> None:
    logs.append_lines(tmp_path / "logs" / "x.log", ["line"], limit=0)
    assert not (tmp_path / "logs").exists()


@pytest.mark.anyio
async def test_logs_task_drains_everything_even_when_cancelled(tmp_path: Path) -> None:
    send, receive = anyio.create_memory_object_stream[str](100)
    supervisor = types.SimpleNamespace(log_lines=receive, state_home=tmp_path,
                                       plan=types.SimpleNamespace(config=types.SimpleNamespace(log_max_kilobytes=64)))
    async with anyio.create_task_group() as group:
        group.start_soon(logs.run, supervisor)
        for index in range(10):
            await send.send(json.dumps({"n": index}))
        await anyio.sleep(0.1)
        for index in range(10, 15):
            send.send_nowait(json.dumps({"n": index}))
        group.cancel_scope.cancel()
    lines = (tmp_path / logs.LOG_FILE).read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(15))


# -- process watching (backend-neutral) ---------------------------------------------------

@pytest.mark.anyio
async def test_wait_for_exit_wakes_when_the_process_ends() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    with anyio.fail_after(10):
        await wait_for_exit(child.pid, ExitWatch.PIDFD)  # asked for: the test switch may turn it off by default
    assert child.poll() == 0, "wait_for_exit returned before the process ended"
    with anyio.fail_after(1):
        await wait_for_exit(child.pid, ExitWatch.PIDFD)  # already gone: returns at once


@pytest.mark.anyio
async def test_without_pidfds_wait_for_exit_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open")  # as on macOS
    with pytest.raises(PidfdUnavailable):
        await wait_for_exit(os.getpid())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_without_pidfds_the_parent_is_polled_until_it_exits(tmp_path: Path, backend: str) -> None:
    """A real process tree: `sh` starts the watcher and exits once the watcher has read its
    parent; the watcher (no pidfds) notices it was orphaned."""
    text = orphaned_watcher(tmp_path / "marker", backend=backend, without_pidfd=True)
    assert text.startswith("gone "), text
    before, after, how = text.split()[1], text.split()[3], text.split()[4]
    assert before != after and how == "poll"


# -- terminal ---------------------------------------------------------------------------

def test_terminal_id() -> None:
    assert terminal_id({"TMUX_PANE": "%3", "ITERM_SESSION_ID": "w0"}) == "tmux:%3"
    assert terminal_id({"ITERM_SESSION_ID": "w0t1"}) == "iterm:w0t1"
    with open(os.devnull) as devnull:
        assert terminal_id({}, devnull.fileno()) == NO_TTY
    master, slave = pty.openpty()
    try:
        assert terminal_id({}, slave) == f"tty:{os.ttyname(slave)}"
    finally:
        os.close(master)
        os.close(slave)


def test_raw_mode_is_restored_on_error() -> None:
    master, slave = pty.openpty()
    try:
        original = termios.tcgetattr(slave)
        with pytest.raises(RuntimeError):
            with raw_mode(slave):
                assert termios.tcgetattr(slave)[3] & termios.ICANON == 0
                raise RuntimeError("boom")
        assert termios.tcgetattr(slave) == original
        assert window_size(slave) is None  # a new pty has no size (0x0) ...
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        assert window_size(slave) == (24, 80)  # ... until one is set: (rows, columns)
    finally:
        os.close(master)
        os.close(slave)


# -- session discovery ------------------------------------------------------------------

def test_events_file_wins(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"session_id": "a"}\nnot json\n{"session_id": "b"}\n{"other": 1}\n')
    assert sessions.last_event_session(events) == "b"
    assert sessions.last_event_session(tmp_path / "missing") is None


def test_claude_written_last_within_window(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    now = time.time()
    for name, age in (("old", 100), ("mine", 5), ("newest", 1)):
        path = folder / f"{name}.jsonl"
        path.write_text("{}\n")
        os.utime(path, (now - age, now - age))
    assert sessions.claude_written_last(folder, since=now - 10) == "newest"
    assert sessions.claude_written_last(folder, since=now - 10, exclude={"newest"}) == "mine"
    assert sessions.claude_written_last(folder, since=now + 60) is None


def test_opencode_written_last(tmp_path: Path) -> None:
    database = tmp_path / "opencode.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE session (id TEXT, directory TEXT, time_created INTEGER, time_updated INTEGER)")
    now = int(time.time() * 1000)
    connection.executemany("INSERT INTO session VALUES (?,?,?,?)", [
        ("ses_old", "/w", now - 100_000, now - 100_000), ("ses_a", "/w", now - 2000, now - 1000),
        ("ses_b", "/w", now - 1500, now - 500), ("ses_other_dir", "/x", now, now)])
    connection.commit()
    connection.close()
    since = time.time() - 10
    assert sessions.opencode_written_last(database, "/w", since) == "ses_b"
    assert sessions.opencode_written_last(database, "/w", since, exclude={"ses_b"}) == "ses_a"
    assert sessions.opencode_written_last(tmp_path / "none.db", "/w", since) is None
    assert sessions.session_exists("opencode", tmp_path.parent, "/w", "x") is False


# -- the store (aiosqlite: asyncio) -------------------------------------------------------

def launch(run_id: str, *, slot: int | None = 1, session: str | None = None, started: float | None = None) -> Launch:
    return Launch(run_id=run_id, tool="opencode", project="/p", workdir="/w", slot=slot, terminal="t",
                  launcher_pid=1, launcher_start="x", container=run_id, session_kind="fresh",
                  session_id=session, started_at=started or time.time())


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_store_finish_is_atomic_and_once(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        a, b = launch("a"), launch("b", slot=2)
        await store.record_launch(a)
        await store.record_launch(b)
        assert {x.run_id for x in await store.unfinished_launches()} == {"a", "b"}

        def pick(exclude: set[str]) -> str | None:
            return next(s for s in ("s1", "s2") if s not in exclude)

        assert await store.finish_launch(a, pick) == (True, "s1")
        assert await store.finish_launch(b, pick) == (True, "s2")  # s1 is claimed by the overlapping a
        assert await store.finish_launch(a, pick) == (False, None)  # already finished
        assert [(s.slot, s.session_id) for s in await store.slots()] == [(1, "s1"), (2, "s2")]
        assert await store.terminal_session("opencode", "/p", "t") == "s2"
        # a later launch may resume s1: claims of launches that ended before it began don't count
        later = launch("c", started=time.time() + 1)
        await store.record_launch(later)
        assert "s1" not in await store.claimed_by_others("opencode", "c", later.started_at)


def test_supervisor_never_execs_into_containers() -> None:
    """Nothing is ever run inside an agent's container: sessions are read from the tools'
    files on the host. The one exec is `llm-docker status --check` re-running the policy
    probes in a slot's GATEWAY (our own container, never the agent's)."""
    sources = {p.relative_to(REPO).as_posix(): p.read_text() for p in (REPO / "supervisor").rglob("*.py")}
    users = sorted(name for name, text in sources.items()
                   if "/exec" in text or ".exec(" in text or ".exec_run(" in text or "exec_create" in text)
    assert users == ["supervisor/gateway.py"]
    gateway = sources["supervisor/gateway.py"]
    assert gateway.count(".exec_run(") == 1 and "gateway" in gateway[:gateway.index(".exec_run(")].rsplit("def ", 1)[1]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_launchers_creating_the_state_database_at_once(tmp_path: Path) -> None:
    """Fresh database, several openers at the same moment: none may fail with 'database is locked'."""
    from supervisor.store import StateStore

    async def open_and_use(home: Path) -> None:
        async with StateStore.open(home) as store:
            await store.slot("claude", "/p", 1)

    for round_number in range(15):
        home = tmp_path / f"round-{round_number}"
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(open_and_use, home)
