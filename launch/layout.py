"""Where the windows of a multi-slot launch go: tmux, macOS terminal windows, or none.

Pure planning: which layout, the command each window runs, the tmux commands that build
the session, and the macOS grid. `supervisor/tasks/windows.py` executes the plan.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import shlex
from collections.abc import Mapping, Sequence

#: Host variables a window's `llm-docker attach` needs to find the same engine and state.
ATTACH_ENVIRONMENT = ("LLM_DOCKER_HOME", "DOCKER_HOST", "PYTHONPATH", "HOME", "PATH")
DETACH_KEYS = "ctrl-p,ctrl-q"


class Layout(enum.Enum):
    """`--layout`: one window per slot in tmux, in macOS terminal windows, or headless."""

    TMUX = "tmux"
    MACOS = "macos"
    NONE = "none"


def default_layout(*, platform: str, tmux_available: bool, terminal: bool) -> Layout:
    """tmux when installed, else macOS windows on a Mac; headless without a terminal."""
    if not terminal:
        return Layout.NONE
    if tmux_available:
        return Layout.TMUX
    if platform == "darwin":
        return Layout.MACOS
    return Layout.NONE


@dataclasses.dataclass(frozen=True)
class Window:
    slot: int
    title: str
    command: str  # one shell command line


def attach_command(tool: str, slot: int, directory: str, *, python: str,
                   environ: Mapping[str, str], launch_id: str | None = None) -> str:
    """The shell line a window runs: `llm-docker attach` with this launch's environment
    (and `--launch`, so it reaches this launch's container even if another runs the slot)."""
    assignments = [f"{name}={shlex.quote(environ[name])}" for name in ATTACH_ENVIRONMENT if name in environ]
    argv = [python, "-m", "cli.admin", "attach", tool, str(slot), directory]
    if launch_id:
        argv += ["--launch", launch_id]
    return " ".join(["env", *assignments, *map(shlex.quote, argv)])


def windows_for(tool: str, slots: Sequence[int], directory: str, *, python: str,
                environ: Mapping[str, str], launch_id: str | None = None) -> list[Window]:
    return [Window(slot, f"{tool}:{slot}", attach_command(tool, slot, directory, python=python, environ=environ,
                                                          launch_id=launch_id))
            for slot in slots]


def tmux_session_name(tool: str, token: str, launch_id: str) -> str:
    """Unique per launch; tmux forbids '.' and ':' in session names."""
    return re.sub(r"[.:\s]", "-", f"llm-docker-{tool}-{token}-{launch_id[:4]}")


def tmux_window_command(session: str, window: Window, *, first: bool) -> list[str]:
    if first:
        return ["tmux", "new-session", "-d", "-s", session, "-n", window.title, "-x", "200", "-y", "50",
                window.command]
    return ["tmux", "new-window", "-d", "-t", f"{session}:", "-n", window.title, window.command]


def tmux_finish_commands(session: str, *, inside_tmux: bool) -> list[list[str]]:
    """Show the session: switch this tmux client to it (no nesting), or attach this terminal."""
    setup = [["tmux", "set-option", "-t", session, "remain-on-exit", "off"],
             ["tmux", "select-window", "-t", f"{session}:^"]]
    show = ["tmux", "switch-client", "-t", session] if inside_tmux else ["tmux", "attach-session", "-t", session]
    return [*setup, show]


# -- macOS -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Frame:
    """A rectangle in screen points: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int


def screens_to_use(screens: Sequence[Frame]) -> list[Frame]:
    """Upstream's choice: 1 screen → it; 2 → the right one; 3+ → all but the 2nd from the left."""
    ordered = sorted(screens, key=lambda frame: frame.x)
    if len(ordered) <= 1:
        return list(ordered)
    if len(ordered) == 2:
        return [ordered[1]]
    return [ordered[0], *ordered[2:]]


def grid(screens: Sequence[Frame], count: int) -> list[Frame]:
    """Window frames for `count` windows: split evenly over the chosen screens (remainder
    to the last), 2 columns per screen (1 for a single window), rows = ceil(n / columns)."""
    chosen = screens_to_use(screens)
    if not chosen or count < 1:
        return []
    share, remainder = divmod(count, len(chosen))
    frames: list[Frame] = []
    for index, screen in enumerate(chosen):
        here = share + (remainder if index == len(chosen) - 1 else 0)
        if here == 0:
            continue
        columns = 1 if here == 1 else 2
        rows = math.ceil(here / columns)
        width, height = screen.width // columns, screen.height // rows
        for cell in range(here):
            row, column = divmod(cell, columns)
            frames.append(Frame(screen.x + column * width, screen.y + row * height, width, height))
    return frames


def _applescript_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_script(app: str, windows: Sequence[Window], frames: Sequence[Frame], *, delay: float = 0.0) -> str:
    """AppleScript that opens one NEW window per slot (never closing any) at its frame,
    `delay` seconds apart."""
    lines = [f'tell application "{app}"', "activate"]
    for index, (window, frame) in enumerate(zip(windows, frames, strict=True)):
        if index and delay:
            lines.append(f"delay {delay}")
        bounds = f"{{{frame.x}, {frame.y}, {frame.x + frame.width}, {frame.y + frame.height}}}"
        command = _applescript_string(window.command)
        if app == "iTerm":
            lines += ["set newWindow to (create window with default profile)",
                      f"tell current session of newWindow to write text {command}",
                      f"set bounds of newWindow to {bounds}"]
        else:
            lines += [f"set newTab to do script {command}",
                      f"set bounds of (first window whose selected tab is newTab) to {bounds}"]
    lines.append("end tell")
    return "\n".join(lines)
