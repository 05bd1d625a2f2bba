"""The windows task: for a supervised launch, report when every slot is ready and open
one window per slot — in tmux, in macOS terminal windows, or none (headless).

Each window runs `llm-docker attach <tool> <slot> <dir> --launch <id>`; closing a window
ends only its slot (the attach stops that container), detaching leaves it running. The
supervisor itself never needs a window: a signal to it stops every slot.

tmux, in any state (no server, a server without clients, other clients attached, or the
launcher inside tmux), follows `launch/layout.py`'s plan: a session of the launch's own,
shown in the launcher's terminal or — inside tmux — by switching the client that shows the
launcher's pane; when the launch ends, that client goes back to the session it came from
and the session is killed. A tmux that fails (not installed, a refused command, no client)
is one notice: the slots keep running headless, never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys

import anyio
from anyio.abc import Process

from launch.layout import (
    Frame,
    Layout,
    TmuxClient,
    Window,
    grid,
    macos_script,
    parse_tmux_client,
    tmux_clients_command,
    tmux_current_client_command,
    tmux_kill_command,
    tmux_new_session_command,
    tmux_new_window_command,
    tmux_return_command,
    tmux_session_name,
    tmux_show_command,
    windows_for,
)
from supervisor.context import Supervisor

NAME = "windows"
#: Upper bound for ending the launch's tmux session (switch back, kill, the attach's exit).
TMUX_END_SECONDS = 10.0


async def run(supervisor: Supervisor) -> None:
    if not supervisor.supervised:
        return
    async with anyio.create_task_group() as group:
        group.start_soon(_report_ready, supervisor)
        await _open_windows(supervisor)


async def _report_ready(supervisor: Supervisor) -> None:
    for slot in supervisor.slots:
        await slot.ready.wait()
    ready = [slot.ready_after for slot in supervisor.slots if slot.ready_after is not None]
    total = len(supervisor.slots)
    slowest = max(ready, default=0.0)
    supervisor.log.info("slots-ready", ready=len(ready), total=total, seconds=round(slowest, 3))
    supervisor.notice(f"{len(ready)}/{total} slots ready in {slowest:.2f} s")


def _windows(supervisor: Supervisor) -> list[Window]:
    plan = supervisor.plan
    slots = [slot.launch.slot for slot in supervisor.slots]
    environ = dict(os.environ)
    return windows_for(plan.request.tool.value, [s for s in slots if s is not None], str(plan.facts.launch_dir),
                       python=sys.executable, environ=environ, launch_id=plan.facts.launch_id)


async def _open_windows(supervisor: Supervisor) -> None:
    layout = supervisor.plan.layout
    if layout is Layout.TMUX:
        await _tmux(supervisor)
    elif layout is Layout.MACOS:
        await _macos(supervisor)
    else:
        tool = supervisor.plan.request.tool.value
        supervisor.notice(f"{len(supervisor.slots)} slot(s) running headless — attach with "
                          f"`llm-docker attach {tool} <slot> {supervisor.plan.facts.launch_dir}`, list with "
                          "`llm-docker status`; Ctrl-C or SIGTERM here stops them all")


class _TmuxFailed(Exception):
    """A tmux command failed; the message is one line for the user. `output`: what it
    printed before (a command list stops at its first failing command)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


async def _tmux_run(command: list[str]) -> str:
    """Run one tmux command (its own process, stdin closed); its stdout, or `_TmuxFailed`."""
    try:
        result = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    except OSError as error:  # no tmux binary, or it cannot start
        raise _TmuxFailed(f"{command[0]}: {error.strerror or error}") from None
    if result.returncode != 0:
        problem = result.stderr.decode(errors="replace").strip().splitlines()
        raise _TmuxFailed(f"tmux {command[1]}: {problem[-1] if problem else f'exit {result.returncode}'}",
                          result.stdout.decode(errors="replace"))
    return result.stdout.decode(errors="replace")


@dataclasses.dataclass
class _TmuxShow:
    """What the launch did to tmux, for the end: its session (once created), the client it
    switched, the attach process that shows the session in the launcher's terminal."""

    session: str | None = None
    switched: TmuxClient | None = None
    attach: Process | None = None


async def _tmux(supervisor: Supervisor) -> None:
    shown = _TmuxShow()
    try:
        try:
            await _tmux_show(supervisor, shown)
        except _TmuxFailed as error:
            supervisor.notice(f"{error} — the slots keep running headless")
        for slot in supervisor.slots:  # the launch's end (or the task group's cancellation)
            await slot.saved.wait()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(TMUX_END_SECONDS):
            await _tmux_end(supervisor, shown)


async def _tmux_show(supervisor: Supervisor, shown: _TmuxShow) -> None:
    plan = supervisor.plan
    name = tmux_session_name(plan.request.tool.value, plan.project.token, plan.facts.launch_id)
    inside = bool(os.environ.get("TMUX"))
    for slot, window in zip(supervisor.slots, _windows(supervisor), strict=True):
        await slot.started.wait()
        if shown.session is None:
            try:
                output = await _tmux_run(tmux_new_session_command(name, window, inside_tmux=inside))
            except _TmuxFailed as error:  # created, and then an option refused: still ours to kill
                created = error.output.strip()
                shown.session = created if created.startswith("$") else None
                raise
            shown.session = output.strip()
            continue
        if plan.request.delay:
            await anyio.sleep(plan.request.delay)
        await _tmux_run(tmux_new_window_command(shown.session, window))
    if shown.session is None:
        return
    if inside:
        client = parse_tmux_client(await _tmux_run(tmux_current_client_command(os.environ.get("TMUX_PANE"))))
        if client is None:
            supervisor.notice(f"no tmux client shows this pane — the slots' windows are in tmux session {name}: "
                              f"`tmux switch-client -t {name}`")
            return
        await _tmux_run(tmux_show_command(shown.session, client))
        shown.switched = client
        supervisor.notice(f"switched this tmux client to session {name} (one window per slot); it comes back "
                          "here when the launch ends")
        return
    if not sys.stdin.isatty():
        supervisor.notice(f"tmux session {name} is ready: `tmux attach -t {name}`")
        return
    supervisor.held_notices = []
    try:
        shown.attach = await anyio.open_process(tmux_show_command(shown.session, None),
                                                stdin=None, stdout=None, stderr=None)
    except OSError as error:
        supervisor.release_notices()
        raise _TmuxFailed(f"tmux attach-session: {error.strerror or error}") from None
    await shown.attach.wait()
    supervisor.release_notices()
    if not all(slot.saved.is_set() for slot in supervisor.slots):
        supervisor.notice(f"left tmux; the slots keep running — `tmux attach -t {name}` to come back, "
                          "Ctrl-C here stops them all")


async def _tmux_end(supervisor: Supervisor, shown: _TmuxShow) -> None:
    """The launch is over: the switched client back where it came from (if it still shows
    the launch's session), the session killed, the launcher's own client gone with it."""
    if shown.session is not None:
        if shown.switched is not None:
            with contextlib.suppress(_TmuxFailed):  # the session may be gone already
                clients = (await _tmux_run(tmux_clients_command(shown.session))).split()
                if shown.switched.name in clients:
                    await _tmux_run(tmux_return_command(shown.switched))
        with contextlib.suppress(_TmuxFailed):
            await _tmux_run(tmux_kill_command(shown.session))
    if shown.attach is not None:
        try:
            with anyio.move_on_after(TMUX_END_SECONDS / 2):
                await shown.attach.wait()  # ends with the session
            if shown.attach.returncode is None:
                shown.attach.terminate()
            await shown.attach.aclose()
        finally:
            supervisor.release_notices()


_SCREENS_JXA = ("ObjC.import('AppKit'); JSON.stringify(ObjC.unwrap($.NSScreen.screens).map(s => "
                "{let f = s.visibleFrame; return [f.origin.x, f.origin.y, f.size.width, f.size.height]}))")


async def _macos(supervisor: Supervisor) -> None:
    if sys.platform != "darwin":
        tool = supervisor.plan.request.tool.value
        supervisor.notice("--layout macos needs macOS — the slots run headless; attach with "
                          f"`llm-docker attach {tool} <slot> {supervisor.plan.facts.launch_dir}`")
        return
    screens_json = await anyio.run_process(["osascript", "-l", "JavaScript", "-e", _SCREENS_JXA], check=False)
    try:
        screens = [Frame(int(x), int(y), int(w), int(h)) for x, y, w, h in json.loads(screens_json.stdout)]
    except (ValueError, TypeError):
        screens = [Frame(0, 25, 1440, 875)]
    windows = _windows(supervisor)
    app = "iTerm" if os.environ.get("TERM_PROGRAM") == "iTerm.app" else "Terminal"
    for slot in supervisor.slots:
        await slot.started.wait()
    script = macos_script(app, windows, grid(screens, len(windows)), delay=supervisor.plan.request.delay)
    result = await anyio.run_process(["osascript", "-e", script], check=False)
    if result.returncode != 0:
        supervisor.notice(f"opening {app} windows failed: {result.stderr.decode(errors='replace').strip()}")
