"""The cld/ocd flag grammar: every README example, and each upstream bug fixed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from launch.argv import HelpRequest, LaunchRequest, TmuxMode, VersionRequest, parse_argv
from launch.errors import UsageError
from launch.tools import Tool

CWD = Path("/home/u/Projects/app")
DIRS = {"/home/u/Projects/app", "/home/u/Projects/app/my-project", "/home/u/Projects/other",
        "/home/u/Projects/app/4dir"}
UUID = "0b6f2c3e-8a1d-4e55-9f0a-1c2d3e4f5a6b"

C, OC = Tool.CLAUDE, Tool.OPENCODE


def parse(tool: Tool, line: str) -> LaunchRequest | HelpRequest | VersionRequest:
    return parse_argv(tool, line.split() if line else [], cwd=CWD,
                      is_dir=lambda p: str(Path(p).resolve()) in DIRS)


def request(tool: Tool, **fields: object) -> LaunchRequest:
    return LaunchRequest(tool=tool, **fields)


MY_PROJECT = Path("/home/u/Projects/app/my-project")

ACCEPTED = [
    # README "Command Options"
    (C, "", request(C)),
    (C, "-c", request(C, continue_session=True)),
    (C, "./my-project 4 -c --slot 1 --delay 0.3 -a -- --permission-mode plan",
     request(C, directory=MY_PROJECT, windows=4, continue_session=True, slot=1, delay=0.3, api=True,
             passthrough=("--permission-mode", "plan"))),
    (C, "my-project", request(C, directory=MY_PROJECT)),
    (C, "4", request(C, windows=4)),
    (C, "--continue", request(C, continue_session=True)),
    (C, f"-c {UUID}", request(C, resume_id=UUID)),
    (C, "--slot 3", request(C, slot=3)),
    (C, "-c --slot 3", request(C, continue_session=True, slot=3)),
    (C, "-c 4", request(C, continue_session=True, windows=4)),
    (C, "4 -c", request(C, continue_session=True, windows=4)),
    (C, "4 --delay 2", request(C, windows=4, delay=2.0)),
    (C, "4 -d 0", request(C, windows=4, delay=0.0)),
    (C, "-a", request(C, api=True)),
    (C, "--api", request(C, api=True)),
    (C, "-a false", request(C, api=False)),
    (C, "-a OFF", request(C, api=False)),
    (C, "-a yes", request(C, api=True)),
    (C, "-a 4", request(C, api=True, windows=4)),
    (C, "--api=no", request(C, api=False)),
    (C, "-ab", request(C, api_background=True)),
    (C, "-t", request(C, tmux=TmuxMode.PLAIN)),
    (C, "--tmux", request(C, tmux=TmuxMode.PLAIN)),
    (C, "-tt", request(C, tmux=TmuxMode.TEAM)),
    (C, "-tt 2", request(C, tmux=TmuxMode.TEAM, team_size=2)),
    (C, "--tmux-team 3", request(C, tmux=TmuxMode.TEAM, team_size=3)),
    (C, "-tt 4", request(C, tmux=TmuxMode.TEAM, team_size=4)),
    (C, "-tr", request(C, tmux=TmuxMode.RECON)),
    (C, "-tc", request(C, tmux=TmuxMode.CODEMAN)),
    (C, "-tcl", request(C, tmux=TmuxMode.CLAUDE_TMUX)),
    (C, "-t -t", request(C, tmux=TmuxMode.PLAIN)),
    (C, "--clean", request(C, clean=True)),
    (C, "--build", request(C, build=True)),
    (C, "--rebuild-force", request(C, rebuild_force=True)),
    (C, "--dry-run", request(C, dry_run=True)),
    (C, "--safe", request(C, danger=False)),
    (C, "--no-dg", request(C, danger=False)),
    (C, "--danger", request(C, danger=True)),
    (C, "--safe --dg", request(C, danger=True)),
    # "Param passthrough to the underlying tool"
    (C, "-c -- --permission-mode plan", request(C, continue_session=True, passthrough=("--permission-mode", "plan"))),
    (C, f"-- --resume {UUID}", request(C, passthrough=("--resume", UUID))),
    (OC, f"-c -- --session {UUID}", request(OC, continue_session=True, passthrough=("--session", UUID))),
    (OC, "-- --fork --model gpt-4", request(OC, passthrough=("--fork", "--model", "gpt-4"))),
    (OC, f"--slot 1 -- -s {UUID}", request(OC, slot=1, passthrough=("-s", UUID))),
    (C, "-- -c 4 --unknown", request(C, passthrough=("-c", "4", "--unknown"))),
    (C, "--", request(C)),
    # "Sessions & Slot System"
    (OC, "-c", request(OC, continue_session=True)),
    (OC, f"-c {UUID}", request(OC, resume_id=UUID)),
    (OC, "-c ses_4fA9bc01", request(OC, resume_id="ses_4fA9bc01")),
    (C, "--slot 1", request(C, slot=1)),
    (C, "-c --slot 1", request(C, continue_session=True, slot=1)),
    (OC, "--slot 1", request(OC, slot=1)),
    (OC, "-c --slot 1", request(OC, continue_session=True, slot=1)),
    (OC, "4", request(OC, windows=4)),
    (OC, "-c 4", request(OC, continue_session=True, windows=4)),
    (OC, "-tt 2", request(OC, tmux=TmuxMode.TEAM, team_size=2)),
    (OC, "-tc", request(OC, tmux=TmuxMode.CODEMAN)),
    # -c never eats a directory, a number or a flag (docs/upstream.md#continue-id)
    (C, "-c ./my-project", request(C, continue_session=True, directory=MY_PROJECT)),
    (C, "-c /home/u/Projects/other", request(C, continue_session=True, directory=Path("/home/u/Projects/other"))),
    (C, "-c -t", request(C, continue_session=True, tmux=TmuxMode.PLAIN)),
    (C, "-c --", request(C, continue_session=True)),
    (C, f"--continue={UUID}", request(C, resume_id=UUID)),
    # numbers win over same-named directories; ./4dir is a directory
    (C, "4dir", request(C, directory=Path("/home/u/Projects/app/4dir"))),
    (C, "--slot=7", request(C, slot=7)),
    (C, "--slot 99", request(C, slot=99)),
    (C, "--delay=1.5 2", request(C, delay=1.5, windows=2)),
]


@pytest.mark.parametrize(("tool", "line", "expected"), ACCEPTED,
                         ids=[f"{t.launcher} {words}" for t, words, _ in ACCEPTED])
def test_accepted(tool: Tool, line: str, expected: LaunchRequest) -> None:
    assert parse(tool, line) == expected


REJECTED = [
    # --slot validation (upstream: a missing value exited 1 silently, nothing was validated;
    # docs/upstream.md#slot-validation)
    (C, "--slot", "--slot needs a slot number 1..99"),
    (OC, "--slot", "--slot needs a slot number 1..99"),
    (C, "--slot -c", "--slot needs a slot number"),
    (C, "--slot 0", "--slot takes a whole number 1..99, got '0'"),
    (C, "--slot 100", "got '100'"),
    (C, "--slot abc", "got 'abc'"),
    (C, "--slot ../x", "got '../x'"),
    (C, "--slot -1", "--slot needs a slot number"),
    (C, "--slot=", "got ''"),
    (C, "-d", "-d needs a number of seconds"),
    (C, "--delay soon", "--delay takes seconds between 0 and 60, got 'soon'"),
    (C, "--delay nan", "got 'nan'"),
    (C, "--delay 61", "got '61'"),
    # -c with something that is not a session id
    (C, "-c abc-uuid", "-c: 'abc-uuid' is neither a session UUID nor an existing directory"),
    (C, "-c ./missing-dir", "'./missing-dir' is neither a session UUID"),
    (OC, "-c ../x", "'../x' is neither an OpenCode session id"),
    (C, "-c=abc", "unknown flag '-c=abc'"),
    # unknown flags are errors, never silent passthrough (docs/upstream.md#unknown-flags)
    (C, "--permission-mode plan",
     "unknown flag '--permission-mode' — to pass it to claude, put it after --: cld -- --permission-mode"),
    (OC, "--model x", "unknown flag '--model' — to pass it to opencode, put it after --: ocd -- --model"),
    (C, "-s 1", "unknown flag '-s'"),
    (OC, "-s 1", "unknown flag '-s'"),
    (C, "--refresh-env", "unknown flag '--refresh-env'"),
    (C, "foo -c", "'foo' is not an existing directory, a window count or a flag"),
    (C, "--clean=yes", "--clean takes no value"),
    # tmux modes exclusive in both launchers (ocd had no check upstream)
    (C, "-t -tt", "-t / -tt / -tr / -tc / -tcl are mutually exclusive — pick one (got -t and -tt)"),
    (C, "-tr -tcl", "mutually exclusive"),
    (OC, "-t -tc", "mutually exclusive — pick one (got -t and -tc)"),
    (OC, "-tt -t", "mutually exclusive"),
    (C, "-tt 8", "-tt supports sizes 2, 3 or 4 (got '8')"),
    # cld-only flags refused by ocd with a clear message
    (OC, "-tr", "-tr is only available in cld"),
    (OC, "--tmux-claude", "--tmux-claude is only available in cld"),
    (OC, "-tcl", "-tcl is only available in cld"),
    (OC, "--safe", "--safe is only available in cld"),
    (OC, "--dg", "--dg is only available in cld"),
    # windows
    (C, "0", "window count must be 1..99, got '0'"),
    (C, "100", "window count must be 1..99"),
    (C, "2 3", "window count given twice (2 and 3)"),
    (C, "my-project ../other", "two project directories given"),
    (C, f"4 -c {UUID}", "one session id cannot be resumed in several windows"),
    (C, "4 --slot 97", "4 windows from --slot 97 would need slots up to 100"),
    (C, "-a maybe", "'maybe' is not an existing directory"),
    (C, "--api=maybe", "--api expects true/false/yes/no/on/off/1/0, got 'maybe'"),
]


@pytest.mark.parametrize(("tool", "line", "message"), REJECTED,
                         ids=[f"{t.launcher} {words}" for t, words, _ in REJECTED])
def test_rejected(tool: Tool, line: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(tool, line)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("line", ["-h", "--help", "--slot -h", "-t -tt -h", "--bogus -h", "-h --slot"])
@pytest.mark.parametrize("tool", [C, OC])
def test_help_wins_before_double_dash(tool: Tool, line: str) -> None:
    assert parse(tool, line) == HelpRequest(tool)


def test_help_after_double_dash_goes_to_the_tool() -> None:
    assert parse(C, "-- -h") == request(C, passthrough=("-h",))


def test_version() -> None:
    assert parse(OC, "--version") == VersionRequest(OC)


def test_window_slots() -> None:
    assert request(C, windows=3).window_slots() == (1, 2, 3)
    assert request(C, windows=2, slot=5).window_slots() == (5, 6)
    assert request(C, slot=4).window_slots() == (4,)
    assert request(C).window_slots() == (None,)


SUGGESTED = [
    # the flag's own arguments stay with it: the whole line, corrected
    (C, ["-p", "hello"], "cld -- -p hello"),
    (OC, ["run", "fix the tests"], "ocd -- run 'fix the tests'"),
    # launcher options before the unknown flag stay before --; what followed -- joins it
    (C, ["4", "-c", "--permission-mode", "plan", "--", "--verbose"], "cld 4 -c -- --permission-mode plan --verbose"),
    (C, ["-p", "it's $HOME; rm -rf ~"], "cld -- -p 'it'\"'\"'s $HOME; rm -rf ~'"),
    (C, ["-p", "two\nlines"], "cld -- -p $'two\\nlines'"),
]


@pytest.mark.parametrize(("tool", "argv", "suggestion"), SUGGESTED, ids=[repr(a) for _, a, _ in SUGGESTED])
def test_the_suggestion_is_the_whole_command_line_behind_double_dash(
        tool: Tool, argv: list[str], suggestion: str) -> None:
    """`cld -p hello` once suggested `cld -- -p` (the prompt dropped). The suggestion keeps
    every argument, quoted, and running it in a shell gives the tool exactly what was typed."""
    with pytest.raises(UsageError) as caught:
        parse_argv(tool, argv, cwd=CWD, is_dir=lambda p: False)
    message = str(caught.value)
    assert message.endswith(f"put it after --: {suggestion}") and "\n" not in message
    echoed = subprocess.run(["bash", "-c", f'printf "%s\\0" {suggestion}'], capture_output=True, text=True,
                            check=True).stdout.split("\0")[:-1]
    cut = echoed.index("--")
    assert echoed[0] == tool.launcher and [*echoed[1:cut], *echoed[cut + 1:]] == [a for a in argv if a != "--"]
    assert parse_argv(tool, echoed[1:], cwd=CWD, is_dir=lambda p: False).passthrough == tuple(echoed[cut + 1:])


def test_a_word_that_is_no_directory_suggests_the_whole_line() -> None:
    with pytest.raises(UsageError) as caught:
        parse_argv(C, ["2", "fix", "the bug"], cwd=CWD, is_dir=lambda p: False)
    assert str(caught.value).endswith("put it after --: cld 2 -- fix 'the bug'")
