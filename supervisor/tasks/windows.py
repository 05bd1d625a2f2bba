"""The windows task: for a supervised launch, report when every slot is ready and open
one window per slot — in tmux, in macOS terminal windows, or none (headless).

Each window runs `llm-docker attach <tool> <slot> <dir> --launch <id>`; closing a window
ends only its slot (the attach stops that container), detaching leaves it running. The
supervisor itself never needs a window: a signal to it stops every slot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio

from launch.layout import (
    Frame,
    Layout,
    Window,
    grid,
    macos_script,
    tmux_finish_commands,
    tmux_session_name,
    tmux_window_command,
    windows_for,
)
from supervisor.context import Supervisor

NAME = "windows"


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


async def _run(command: list[str]) -> None:
    result = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed: {result.stderr.decode(errors='replace').strip()}")


async def _tmux(supervisor: Supervisor) -> None:
    plan = supervisor.plan
    session = tmux_session_name(plan.request.tool.value, plan.project.token, plan.facts.launch_id)
    first = True
    for slot, window in zip(supervisor.slots, _windows(supervisor), strict=True):
        await slot.started.wait()
        if not first and plan.request.delay:
            await anyio.sleep(plan.request.delay)
        try:
            await _run(tmux_window_command(session, window, first=first))
        except RuntimeError as error:
            supervisor.notice(f"tmux: {error} — the slots keep running headless")
            return
        first = False
    inside = bool(os.environ.get("TMUX"))
    *setup, show = tmux_finish_commands(session, inside_tmux=inside)
    for command in setup:
        await _run(command)
    if inside:
        await _run(show)
        supervisor.notice(f"switched this tmux client to session {session} (one window per slot)")
        return
    if not sys.stdin.isatty():
        supervisor.notice(f"tmux session {session} is ready: `tmux attach -t {session}`")
        return
    supervisor.held_notices = []
    try:
        process = await anyio.open_process(show, stdin=None, stdout=None, stderr=None)
        try:
            await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
    finally:
        supervisor.release_notices()
    if not all(slot.saved.is_set() for slot in supervisor.slots):
        supervisor.notice(f"left tmux; the slots keep running — `tmux attach -t {session}` to come back, "
                          "Ctrl-C here stops them all")


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
