"""Where the windows of a multi-slot launch go: tmux, macOS terminal windows, or none.

Pure planning: which layout, the command each window runs, the tmux commands that build,
show and end the session, and the macOS grid. `supervisor/tasks/windows.py` executes the plan.

tmux, whatever its state — the launch always gets a session of its own, one window per slot:

* **outside tmux** (no `$TMUX`; with or without a server, with or without other clients):
  the launcher's terminal attaches to that session (a client of its own); other clients are
  never touched. Without a terminal the session's name is said instead.
* **inside tmux** (`$TMUX` set): no nesting and no windows added to the user's session — the
  client that shows the launcher's pane is switched to the new session, and the session it
  came from is remembered. No client shows the pane (a detached session, a script): the
  session's name is said, nothing is switched.
* **the end of the launch**: a client that was switched and still shows the launch's session
  is switched back to the session it came from; then the session is killed.

A window whose slot ended (or was detached) closes itself, except the session's last: it
waits (Enter closes it) until the supervisor ends the launch, so tmux never destroys the
session — detaching the clients that show it, dropping a switched user out of tmux — before
the client was sent back. (Not `remain-on-exit` and a `pane-died` hook: tmux 3.3 built with
utempter can miss a pane's SIGCHLD, leaving the pane undead and the hook unrun.) The
session's own options make the result independent of the user's tmux.conf:
`detach-on-destroy` is on for the launcher's own client (it ends with the session) and off
inside tmux (a switched client that closed the last window itself lands in another session,
not outside tmux); `destroy-unattached` is off.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import shlex
from collections.abc import Mapping, Sequence

from launch.python_command import own_module

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
    argv = own_module("cli.admin", "attach", tool, str(slot), directory, python=python)
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


@dataclasses.dataclass(frozen=True)
class TmuxClient:
    """A tmux client (its name, the tty) and the id of the session it showed before the
    launch switched it."""

    name: str
    session: str


#: What the last window of a launch's session says once its slot ended or was detached.
LAST_WINDOW_NOTE = "(the launch's last window: it closes when the launch ends — Enter closes it now)"
_CURRENT_CLIENT = "#{client_name}\t#{session_id}"


def tmux_window_program(window: Window) -> list[str]:
    """What a slot's tmux window runs (argv: no default-shell in between): the slot's attach;
    once it returns (the slot ended, or was detached), the window closes itself — unless it
    is the session's last, which waits for the end of the launch. tmux runs the check and
    the close as one command, so of two windows ending at once exactly one stays; tmux
    never destroys the session under a client the launch has to send back."""
    script = "\n".join([
        window.command,
        'tmux if-shell -F -t "$TMUX_PANE" "#{!=:#{session_windows},1}" "kill-pane -t $TMUX_PANE"',
        f"printf '\\n%s\\n' {shlex.quote(LAST_WINDOW_NOTE)}",
        "read -r _",
    ])
    return ["sh", "-c", script]


def tmux_new_session_command(name: str, window: Window, *, inside_tmux: bool) -> list[str]:
    """Create the launch's session, detached, with the first slot's window; prints the
    session's id (later commands target it: a rename cannot misdirect them). The session's
    options are set in the same command list."""
    session = f"={name}:"
    return ["tmux", "new-session", "-d", "-P", "-F", "#{session_id}", "-s", name, "-n", window.title,
            "-x", "200", "-y", "50", *tmux_window_program(window),
            ";", "set-option", "-t", session, "detach-on-destroy", "off" if inside_tmux else "on",
            ";", "set-option", "-t", session, "destroy-unattached", "off"]


def tmux_new_window_command(session_id: str, window: Window) -> list[str]:
    """One more slot's window in the launch's session, in the background."""
    return ["tmux", "new-window", "-d", "-t", f"{session_id}:", "-n", window.title, *tmux_window_program(window)]


def tmux_current_client_command(pane: str | None) -> list[str]:
    """Which client shows the launcher's pane (`$TMUX_PANE`), and that pane's session: one
    line `client<TAB>session id`, the client empty when none does."""
    return ["tmux", "display-message", "-p", *(["-t", pane] if pane else []), _CURRENT_CLIENT]


def parse_tmux_client(output: str) -> TmuxClient | None:
    name, _, session = output.strip().partition("\t")
    return TmuxClient(name, session) if name and session.startswith("$") else None


def tmux_show_command(session_id: str, client: TmuxClient | None) -> list[str]:
    """Show the session: switch `client` to it (inside tmux: no nesting), or, with no
    client, attach the launcher's own terminal."""
    if client is not None:
        return ["tmux", "switch-client", "-c", client.name, "-t", session_id]
    return ["tmux", "attach-session", "-t", session_id]


def tmux_clients_command(session_id: str) -> list[str]:
    """The names of the clients that show the session, one a line."""
    return ["tmux", "list-clients", "-t", session_id, "-F", "#{client_name}"]


def tmux_return_command(client: TmuxClient) -> list[str]:
    """Send a switched client back to the session it came from."""
    return ["tmux", "switch-client", "-c", client.name, "-t", client.session]


def tmux_kill_command(session_id: str) -> list[str]:
    return ["tmux", "kill-session", "-t", session_id]


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
