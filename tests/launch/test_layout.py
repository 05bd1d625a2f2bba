"""Window layouts of supervised launches: the pure planning in `launch/layout.py`."""

from __future__ import annotations

import shlex

import pytest

from launch.argv import LaunchRequest
from launch.layout import (
    Frame,
    Layout,
    attach_command,
    default_layout,
    grid,
    macos_script,
    screens_to_use,
    tmux_finish_commands,
    tmux_session_name,
    tmux_window_command,
    windows_for,
)
from launch.tools import Tool


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
    assert words[-9:] == ["/usr/bin/python3", "-m", "cli.admin", "attach", "claude", "3", "/work/my project",
                          "--launch", "abc123"]


def test_tmux_commands() -> None:
    windows = windows_for("opencode", [1, 2], "/p", python="py", environ={})
    session = tmux_session_name("opencode", "my.app", "f00dfeed")
    assert session == "llm-docker-opencode-my-app-f00d"
    assert tmux_window_command(session, windows[0], first=True)[:6] == [
        "tmux", "new-session", "-d", "-s", session, "-n"]
    second = tmux_window_command(session, windows[1], first=False)
    assert second[:5] == ["tmux", "new-window", "-d", "-t", f"{session}:"] and second[6] == "opencode:2"
    assert tmux_finish_commands(session, inside_tmux=True)[-1] == ["tmux", "switch-client", "-t", session]
    assert tmux_finish_commands(session, inside_tmux=False)[-1] == ["tmux", "attach-session", "-t", session]


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
