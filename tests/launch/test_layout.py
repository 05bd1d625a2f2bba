"""Window layouts of supervised launches: the pure planning in `launch/layout.py`."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch.argv import LaunchRequest
from launch.layout import (
    LAST_WINDOW_NOTE,
    Frame,
    Layout,
    TmuxClient,
    Window,
    attach_command,
    default_layout,
    grid,
    macos_script,
    parse_tmux_client,
    screens_to_use,
    tmux_current_client_command,
    tmux_kill_command,
    tmux_new_session_command,
    tmux_new_window_command,
    tmux_return_command,
    tmux_session_name,
    tmux_show_command,
    windows_for,
)
from launch.tools import Tool
from testbed.processes import wait_until
from testbed.tmux import TmuxServer


@pytest.mark.parametrize(("platform", "tmux", "terminal", "expected"), [
    ("linux", True, True, Layout.TMUX),
    ("darwin", True, True, Layout.TMUX),
    ("darwin", False, True, Layout.MACOS),
    ("linux", False, True, Layout.NONE),
    ("linux", True, False, Layout.NONE),
    ("darwin", False, False, Layout.NONE),
])
def test_default_layout(platform: str, tmux: bool, terminal: bool, expected: Layout) -> None:
    assert default_layout(platform=platform, tmux_available=tmux, terminal=terminal) is expected


def test_supervised_requests_and_their_slots() -> None:
    assert not LaunchRequest(Tool.CLAUDE).supervised
    assert LaunchRequest(Tool.CLAUDE).window_slots() == (None,)
    assert LaunchRequest(Tool.CLAUDE, windows=3).window_slots() == (1, 2, 3)
    single = LaunchRequest(Tool.CLAUDE, layout=Layout.NONE)
    assert single.supervised and single.window_slots() == (1,)
    assert LaunchRequest(Tool.OPENCODE, windows=2, slot=5).window_slots() == (5, 6)


def test_attach_command_survives_the_shell() -> None:
    environ = {"HOME": "/home/o'brien", "PYTHONPATH": "/src dir", "SECRET": "nope", "LLM_DOCKER_HOME": "/s"}
    line = attach_command("claude", 3, "/work/my project", python="/usr/bin/python3", environ=environ,
                          launch_id="abc123")
    words = shlex.split(line)
    assert words[0] == "env" and "HOME=/home/o'brien" in words and "PYTHONPATH=/src dir" in words
    assert not any(word.startswith("SECRET=") for word in words)
    # -P: the window's working folder (the project, agent-written) is never on sys.path
    assert words[-10:] == ["/usr/bin/python3", "-P", "-m", "cli.admin", "attach", "claude", "3", "/work/my project",
                          "--launch", "abc123"]


def test_tmux_commands() -> None:
    windows = windows_for("opencode", [1, 2], "/p", python="py", environ={})
    session = tmux_session_name("opencode", "my.app", "f00dfeed")
    assert session == "llm-docker-opencode-my-app-f00d"
    first = tmux_new_session_command(session, windows[0], inside_tmux=False)
    assert first[:9] == ["tmux", "new-session", "-d", "-P", "-F", "#{session_id}", "-s", session, "-n"]
    second = tmux_new_window_command("$7", windows[1])
    assert second[:7] == ["tmux", "new-window", "-d", "-t", "$7:", "-n", "opencode:2"]
    assert second[7:9] == ["sh", "-c"] and second[9].startswith(windows[1].command + "\n")
    client = parse_tmux_client("/dev/pts/3\t$2\n")
    assert client == TmuxClient("/dev/pts/3", "$2")
    assert parse_tmux_client("\t$2\n") is None  # no client shows the pane
    assert tmux_show_command("$7", client) == ["tmux", "switch-client", "-c", "/dev/pts/3", "-t", "$7"]
    assert tmux_show_command("$7", None) == ["tmux", "attach-session", "-t", "$7"]
    assert tmux_return_command(client) == ["tmux", "switch-client", "-c", "/dev/pts/3", "-t", "$2"]
    assert tmux_current_client_command("%4")[-3:-1] == ["-t", "%4"]


@pytest.fixture
def tmux_server() -> Iterator[TmuxServer]:
    server = TmuxServer()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("inside", [False, True])
def test_tmux_windows_close_themselves_except_the_last(tmux_server: TmuxServer, tmp_path: Path, inside: bool) -> None:
    """On a real tmux server: three windows whose slots end at the same moment — two close,
    exactly one stays (saying so) and keeps the session, with the session's options set."""
    go = tmp_path / "go"
    wait_for_go = f"while [ ! -e {shlex.quote(str(go))} ]; do sleep 0.05; done"
    windows = [Window(slot, f"claude:{slot}", wait_for_go) for slot in (1, 2, 3)]
    session = tmux_server.command(tmux_new_session_command("llm-docker-t", windows[0], inside_tmux=inside)).strip()
    assert session.startswith("$")
    for window in windows[1:]:
        tmux_server.command(tmux_new_window_command(session, window))
    listed = ["list-windows", "-t", session, "-F", "#{window_name}"]
    assert tmux_server(*listed).split() == ["claude:1", "claude:2", "claude:3"]
    go.touch()
    wait_until(lambda: len(tmux_server(*listed).split()) == 1
               and LAST_WINDOW_NOTE in tmux_server("capture-pane", "-p", "-J", "-t", f"{session}:"))
    options = tmux_server("show-options", "-t", f"{session}:")
    assert f"detach-on-destroy {'off' if inside else 'on'}" in options and "destroy-unattached off" in options
    tmux_server.command(tmux_kill_command(session))
    assert "llm-docker-t" not in tmux_server.sessions()


SCREEN_A, SCREEN_B, SCREEN_C = Frame(0, 0, 1000, 800), Frame(1000, 0, 2000, 1200), Frame(3000, 0, 1000, 800)


def test_which_screens_like_upstream() -> None:
    assert screens_to_use([SCREEN_A]) == [SCREEN_A]
    assert screens_to_use([SCREEN_B, SCREEN_A]) == [SCREEN_B]  # the right one
    assert screens_to_use([SCREEN_C, SCREEN_A, SCREEN_B]) == [SCREEN_A, SCREEN_C]  # all but the middle


def test_grid_two_columns_rows_as_needed() -> None:
    assert grid([SCREEN_A], 1) == [Frame(0, 0, 1000, 800)]
    assert grid([SCREEN_A], 3) == [Frame(0, 0, 500, 400), Frame(500, 0, 500, 400), Frame(0, 400, 500, 400)]
    frames = grid([SCREEN_A, SCREEN_B, SCREEN_C], 5)  # 2 on A, 3 on C (remainder to the last)
    assert [f.x >= 3000 for f in frames].count(True) == 3 and len(frames) == 5
    assert grid([], 3) == [] and grid([SCREEN_A], 0) == []


def test_macos_script_opens_new_windows_and_never_kills() -> None:
    windows = windows_for("claude", [1, 2], "/p", python="py", environ={})
    script = macos_script("iTerm", windows, grid([SCREEN_A], 2), delay=0.5)
    assert script.count("create window with default profile") == 2
    assert "killall" not in script and "close" not in script
    assert "set bounds of newWindow to {0, 0, 500, 800}" in script and script.count("delay 0.5") == 1
    terminal = macos_script("Terminal", windows, grid([SCREEN_A], 2))
    assert terminal.count("do script") == 2 and '\\"' not in terminal.split("do script", 1)[0]
