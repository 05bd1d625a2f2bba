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
(bounded reads of agent-written files, BEFORE any transaction) is written to the slot and the
terminal map, claimed, and the journal row closed — one short transaction. The same function
finishes the save for a launcher that died (`recover`).

A slot runs once at a time: the journal row is its lease (`StateStore.record_launches`); a
second launch of a busy slot is refused with `busy_message`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio

from launch.argv import LaunchRequest
from launch.identity import project_state_home
from launch.mounts import EVENTS_FILE, run_folder
from launch.session import SessionChoice, SessionKind, session_from_request
from supervisor.remove_tree import remove_tree
from supervisor.sessions import EVENTS_SECONDS, discover_bounded, session_exists
from supervisor.store import Launch, SlotBusy, StateStore
from supervisor.untrusted import run_bounded

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
        if not await _exists(tool, project_state_home(state_home, project), workdir, saved.session_id):
            notice(f"slot {slot}'s session {saved.session_id} is not available from {workdir} "
                   f"(it was saved from {saved.workdir}) — starting a fresh one")
            return fresh
        return SessionChoice(SessionKind.RESUME, saved.session_id)
    remembered = await store.terminal_session(tool, project, terminal)
    if remembered and await _exists(tool, project_state_home(state_home, project), workdir, remembered):
        return SessionChoice(SessionKind.RESUME, remembered)
    return requested


async def _exists(tool: str, tool_home: Path, workdir: str, session_id: str) -> bool:
    """`session_exists` on agent-written files (the project's tool folders), bounded: too
    slow counts as absent."""
    try:
        return await run_bounded(lambda: session_exists(tool, tool_home, workdir, session_id), EVENTS_SECONDS)
    except TimeoutError:
        return False


def busy_message(busy: SlotBusy) -> str:
    """The one-line refusal of a second launch of a busy slot: who holds it, what to do."""
    holder = busy.holder
    return (f"slot {holder.slot} is busy: the {holder.tool} launch in terminal {holder.terminal} "
            f"(pid {holder.launcher_pid}) runs it in this project — attach to it with "
            f"`llm-docker attach {holder.tool} {holder.slot}`, or pick another --slot")


async def save_launch(store: StateStore, launch: Launch, state_home: Path, notice: Notice | None) -> str | None:
    """Discover the session of a finished launch and save it; idempotent across processes.

    Discovery (bounded, agent-written files) runs first; the transaction only decides. A
    `StateError` (e.g. a full disk) propagates with the journal row still open and the run
    folder kept: the events file is the evidence the next launch's recovery saves from.
    """
    folder = run_folder(state_home, launch.container)
    # the tool's own files live in the project's state folder (`project_state_home`)
    found = await discover_bounded(tool=launch.tool, state_home=project_state_home(state_home, launch.project),
                                   workdir=launch.workdir,
                                   events=folder / EVENTS_FILE, since=launch.started_at,
                                   started_with=launch.session_id)
    finished, session = await store.finish_launch(launch, found.choose)
    if not finished:
        return None  # somebody (the guardian, another invocation) saved it already
    # the agent could write into it (any depth, any number of files): off the event loop,
    # never recursing, never holding up the launch's end when cancelled
    await anyio.to_thread.run_sync(remove_tree, folder, abandon_on_cancel=True)
    if notice is not None and found.problem is not None:
        notice(f"{_label(launch)}: {found.problem} — the session was attributed from the tool's own files")
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
