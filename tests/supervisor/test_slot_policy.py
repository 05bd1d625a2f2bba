"""The slot policy (supervisor/slots.py) on a real StateStore (SQLite in a tmp folder, no
fakes): which session a launch opens — fresh, `-c ID`, `-c --slot N`, `-c` in a terminal —
and the lease rules around it (busy, dead holder, a slot that moved)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from launch.argv import LaunchRequest, parse_argv
from launch.identity import project_state_home
from launch.session import SessionChoice, SessionKind
from launch.tools import Tool
from supervisor.sessions import claude_session_folder
from supervisor.slots import busy_message, new_launch, resolve_session
from supervisor.store import Launch, SlotBusy, SlotMoved, StateStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite's thread talks to the loop through asyncio."""
    return "asyncio"

PROJECT = "/home/u/Projects/app"
WORKDIR = "/root/Projects/app"
TERMINAL = "tmux:%3"
NEW = "11111111-2222-4333-8444-555555555555"
SAVED = "0b6f2c3e-8a1d-4e55-9f0a-1c2d3e4f5a6b"


def request(tool: Tool, line: str) -> LaunchRequest:
    parsed = parse_argv(tool, line.split(), cwd=Path(PROJECT), is_dir=lambda _: False)
    assert isinstance(parsed, LaunchRequest)
    return parsed


def write_claude_session(state_home: Path, session_id: str, workdir: str = WORKDIR) -> None:
    """The session file Claude Code would have written for `workdir` (what `-c` can resume)."""
    folder = claude_session_folder(project_state_home(state_home, PROJECT), workdir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{session_id}.jsonl").write_text('{"type":"user"}\n')


async def resolve(store: StateStore, state_home: Path, line: str, *, slot: int | None = None,
                  terminal: str = TERMINAL, tool: Tool = Tool.CLAUDE) -> tuple[SessionChoice, list[str]]:
    notices: list[str] = []
    choice = await resolve_session(store, request(tool, line), project=PROJECT, workdir=WORKDIR, slot=slot,
                                   terminal=terminal, state_home=state_home, new_session_id=NEW,
                                   notice=notices.append)
    return choice, notices


def launch(run_id: str, *, slot: int | None = 2, session: SessionChoice | None = None,
           terminal: str = TERMINAL) -> Launch:
    return new_launch(run_id=run_id, tool="claude", project=PROJECT, workdir=WORKDIR, slot=slot, terminal=terminal,
                      launcher_pid=4242, launcher_start="777", container=f"c-{run_id}",
                      session=session or SessionChoice(SessionKind.FRESH, NEW))


async def save(store: StateStore, run: Launch, session_id: str) -> None:
    """What `save_launch` does once discovery found `session_id`: the real transaction."""
    assert await store.finish_launch(run, lambda claimed: session_id) == (True, session_id)


async def test_a_plain_launch_is_fresh_with_a_minted_id_for_claude_only(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        assert await resolve(store, tmp_path, "--slot 2", slot=2) == (SessionChoice(SessionKind.FRESH, NEW), [])
        assert await resolve(store, tmp_path, "", tool=Tool.OPENCODE) == (SessionChoice(SessionKind.FRESH, None), [])


async def test_an_explicit_session_id_is_resumed_whatever_the_slot_holds(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        first = launch("a")
        await store.record_launches([first])
        await save(store, first, SAVED)
        other = "33333333-2222-4333-8444-555555555555"
        assert await resolve(store, tmp_path, f"-c {other} --slot 2", slot=2) == (
            SessionChoice(SessionKind.RESUME, other), [])


async def test_continue_a_slot_resumes_its_saved_session(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        first = launch("a")
        await store.record_launches([first])
        await save(store, first, SAVED)
        write_claude_session(tmp_path, SAVED)
        assert await resolve(store, tmp_path, "-c --slot 2", slot=2) == (SessionChoice(SessionKind.RESUME, SAVED), [])
        # another slot of the project has nothing saved: fresh, and it says so
        choice, notices = await resolve(store, tmp_path, "-c --slot 3", slot=3)
        assert choice == SessionChoice(SessionKind.FRESH, NEW)
        assert notices == ["slot 3 has no saved session for this project yet — starting a fresh one"]


async def test_continue_a_slot_whose_session_the_tool_cannot_find_starts_fresh(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        first = launch("a")
        await store.record_launches([first])
        await save(store, first, SAVED)
        write_claude_session(tmp_path, SAVED, workdir="/root/Projects/elsewhere")  # not this workdir's
        choice, notices = await resolve(store, tmp_path, "-c --slot 2", slot=2)
        assert choice == SessionChoice(SessionKind.FRESH, NEW)
        assert notices == [f"slot 2's session {SAVED} is not available from {WORKDIR} (it was saved from {WORKDIR}) "
                           "— starting a fresh one"]


async def test_continue_without_a_slot_follows_this_terminal(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        slotless = launch("a", slot=None)
        await store.record_launches([slotless])
        await save(store, slotless, SAVED)
        # the session file is gone: the tool's own "continue the latest"
        assert await resolve(store, tmp_path, "-c") == (SessionChoice(SessionKind.CONTINUE), [])
        write_claude_session(tmp_path, SAVED)
        assert await resolve(store, tmp_path, "-c") == (SessionChoice(SessionKind.RESUME, SAVED), [])
        # another terminal remembers nothing
        assert await resolve(store, tmp_path, "-c", terminal="tmux:%9") == (SessionChoice(SessionKind.CONTINUE), [])


async def test_a_slot_saved_last_wins_and_slots_do_not_share(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        two, three = launch("a", slot=2), launch("b", slot=3)
        await store.record_launches([two, three])
        await save(store, two, SAVED)
        await save(store, three, NEW)
        for session in (SAVED, NEW):
            write_claude_session(tmp_path, session)
        assert (await resolve(store, tmp_path, "-c --slot 2", slot=2))[0] == SessionChoice(SessionKind.RESUME, SAVED)
        assert (await resolve(store, tmp_path, "-c --slot 3", slot=3))[0] == SessionChoice(SessionKind.RESUME, NEW)
        again = launch("c", slot=2, session=SessionChoice(SessionKind.RESUME, SAVED))
        await store.record_launches([again])
        await save(store, again, "22222222-2222-4333-8444-555555555555")
        write_claude_session(tmp_path, "22222222-2222-4333-8444-555555555555")
        assert (await resolve(store, tmp_path, "-c --slot 2", slot=2))[0] == SessionChoice(
            SessionKind.RESUME, "22222222-2222-4333-8444-555555555555")


async def test_a_busy_slot_refuses_a_live_holder_and_frees_after_a_dead_holder_is_saved(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        holder = launch("a")
        await store.record_launches([holder])
        with pytest.raises(SlotBusy) as busy:
            await store.record_launches([launch("b")], holder_alive=lambda _: True)
        assert busy.value.alive and busy.value.holder == holder
        assert busy_message(busy.value) == (
            "slot 2 is busy: the claude launch in terminal tmux:%3 (pid 4242) runs it in this project — attach to "
            "it with `llm-docker attach claude 2`, or pick another --slot")
        with pytest.raises(SlotBusy) as dead:
            await store.record_launches([launch("b")], holder_alive=lambda _: False)
        assert dead.value.alive is False  # the caller recovers it (saves its session), then retries
        await save(store, dead.value.holder, SAVED)
        await store.record_launches([launch("b")], holder_alive=lambda _: True)
        assert [row.run_id for row in await store.unfinished_launches()] == ["b"]
        saved = await store.slot("claude", PROJECT, 2)
        assert saved is not None and saved.session_id == SAVED


async def test_a_slot_saved_after_the_launch_resolved_it_has_moved(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        resolved_at = time.time()
        other = launch("a")
        await store.record_launches([other])
        await save(store, other, SAVED)  # another invocation saved slot 2 meanwhile
        with pytest.raises(SlotMoved):
            await store.record_launches([launch("b")], resolved_since=resolved_at)
        assert await store.unfinished_launches() == []  # nothing written: all or none
        await store.record_launches([launch("c")], resolved_since=time.time())
