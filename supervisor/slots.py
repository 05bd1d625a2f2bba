"""The slot system, in one place: which session a launch opens, and which it saves.

Before launch (`resolve_session`):

* `-c ID` resumes ID;
* `-c --slot N` resumes the session saved for (tool, project, N) — if the tool can still
  find it from this workdir; otherwise it says so and starts fresh (upstream silently
  continued "the latest" session, which could be another slot's);
* `-c` without a slot continues this terminal's last session in this project, else the
  tool's own "continue the latest";
* otherwise a fresh session (for Claude with a UUID minted here, passed as `--session-id`).

After the container is gone (`save_launch`): the session discovered by `supervisor.sessions`
is written to the slot and the terminal map, claimed, and the journal row closed — one
transaction. The same function finishes the save for a launcher that died (`recover`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from launch.command import SessionChoice, SessionKind, session_from_request
from launch.identity import EVENTS_FILE, run_folder
from launch.argv import LaunchRequest
from supervisor.sessions import discover_session, session_exists
from supervisor.store import Launch, StateStore

Notice = Callable[[str], None]


async def resolve_session(store: StateStore, request: LaunchRequest, *, project: str, workdir: str,
                          slot: int | None, terminal: str, state_home: Path, new_session_id: str,
                          notice: Notice) -> SessionChoice:
    tool = request.tool.value
    requested = session_from_request(request, new_session_id)
    if requested.kind is not SessionKind.CONTINUE:
        return requested
    fresh = session_from_request(
        LaunchRequest(tool=request.tool), new_session_id)  # same tool, no -c: a fresh session
    if slot is not None:
        saved = await store.slot(tool, project, slot)
        if saved is None:
            notice(f"slot {slot} has no saved session for this project yet — starting a fresh one")
            return fresh
        if not await anyio.to_thread.run_sync(session_exists, tool, state_home, workdir, saved.session_id):
            notice(f"slot {slot}'s session {saved.session_id} is not available from {workdir} "
                   f"(it was saved from {saved.workdir}) — starting a fresh one")
            return fresh
        return SessionChoice(SessionKind.RESUME, saved.session_id)
    remembered = await store.terminal_session(tool, project, terminal)
    if remembered and await anyio.to_thread.run_sync(session_exists, tool, state_home, workdir, remembered):
        return SessionChoice(SessionKind.RESUME, remembered)
    return requested


async def save_launch(store: StateStore, launch: Launch, state_home: Path, notice: Notice | None) -> str | None:
    """Discover the session of a finished launch and save it; idempotent across processes."""
    folder = run_folder(state_home, launch.container)

    async def discover(exclude: set[str]) -> str | None:
        return await anyio.to_thread.run_sync(lambda: discover_session(
            tool=launch.tool, state_home=state_home, workdir=launch.workdir, events=folder / EVENTS_FILE,
            since=launch.started_at, started_with=launch.session_id, exclude=exclude))

    finished, session = await store.finish_launch(launch, discover)
    if not finished:
        return None  # somebody (the guardian, another invocation) saved it already
    shutil.rmtree(folder, ignore_errors=True)
    if notice is not None and launch.slot is not None:
        # Slotless launches (`cld -- --version`) stay quiet: nothing was asked to be kept.
        if session is None:
            notice(f"{_label(launch)}: the tool wrote no session — nothing to save")
        else:
            notice(f"slot {launch.slot} saved: {session}")
    return session


def _label(launch: Launch) -> str:
    return launch.tool if launch.slot is None else f"{launch.tool} slot {launch.slot}"


def new_launch(*, run_id: str, tool: str, project: str, workdir: str, slot: int | None, terminal: str,
               launcher_pid: int, launcher_start: str, container: str, session: SessionChoice) -> Launch:
    return Launch(run_id=run_id, tool=tool, project=project, workdir=workdir, slot=slot, terminal=terminal,
                  launcher_pid=launcher_pid, launcher_start=launcher_start, container=container,
                  session_kind=session.kind.value, session_id=session.session_id, started_at=time.time())
