"""The tmux modes' questions, asked by the real launcher (`cld`/`ocd` as a subprocess) on a real
pseudo-terminal, with a throw-away HOME and no reachable engine (`DOCKER_HOST` is a dead
socket): a launch that gets past its questions ends with the engine's exit code 125, which
shows that it went on; a refusal ends before that, with its own code.

* `-tr`/`-tc`/`-tcl`: one line, exit 2, no question, no file, no engine contact.
* An `INSTALL_TMUX_*` that is off: the question; no / EOF / no terminal → the fix, exit 1,
  the config untouched; yes → the key written (the other lines kept) and the launch goes on.
* `-t` inside tmux (`$TMUX`): the menu; 1 → bare (no tmux setting needed), 2 → nested (the
  setting's question follows); no terminal → bare with a notice.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.processes import PtyProcess, command, launcher_env

#: A generous bound for each expected output (two cores shared by many tests): a failure
#: waits this long, a pass does not.
WAIT_SECONDS = 90
DEAD_ENGINE = "unix:///nonexistent/llm-docker-test/docker.sock"
EXIT_ENGINE = 125
USER_CONF = ("# my settings — keep this comment\n"
             "INSTALL_TMUX_VANILLA=false\n"
             "\n"
             "# and this one\n"
             "CLAUDE_CODE_MAX_OUTPUT_TOKENS=32000\n")


def tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else b""
            for path in root.rglob("*")}


def launch(terminals: list[PtyProcess], home: Path, project: Path, *args: str, tool: str = "cld",
           **env: str) -> PtyProcess:
    """The launcher on a pseudo-terminal, no engine reachable, in process (no launch server)."""
    terminal = PtyProcess(tool, *args, cwd=project, home=home, DOCKER_HOST=DEAD_ENGINE,
                          LLM_DOCKER_LAUNCH_SERVER="off", **env)
    terminals.append(terminal)
    return terminal


def ended(terminal: PtyProcess, last: str) -> tuple[int, list[str]]:
    """The exit code and the non-blank lines shown, once `last` (the final output) was read."""
    code = terminal.wait(WAIT_SECONDS)
    terminal.expect(last, WAIT_SECONDS)
    return code, [line for line in terminal.text.replace("\r\n", "\n").splitlines() if line.strip()]


def user_conf(home: Path, text: str = USER_CONF) -> Path:
    conf = home / ".llm-docker" / "llm-docker.conf"
    conf.parent.mkdir(mode=0o700, exist_ok=True)
    conf.write_text(text)
    conf.chmod(0o640)
    return conf


# -- modes this build cannot give -------------------------------------------------------------

@pytest.mark.parametrize(("tool", "flag", "shown", "tool_name"), [
    ("cld", "-tr", "-tr", "gavraz/recon"), ("cld", "-tc", "-tc", "Ark0N/Codeman"),
    ("cld", "-tcl", "-tcl", "nielsgroen/claude-tmux"), ("ocd", "-tc", "-tc", "Ark0N/Codeman"),
    ("cld", "--tmux-recon", "-tr", "gavraz/recon"),
])
def test_an_unavailable_mode_is_one_line_before_any_question_file_or_engine(
        pty_processes: list[PtyProcess], user_home: Path, project: Path, tool: str, flag: str, shown: str,
        tool_name: str) -> None:
    # INSTALL_TMUX_RECON/CODEMAN/CLAUDE are off by default: a question would come, were the order wrong
    before = tree(user_home)
    terminal = launch(pty_processes, user_home, project, flag, tool=tool)
    code, lines = ended(terminal, "tmux")
    assert code == 2, lines
    [line] = lines
    assert line.startswith(f"{tool}: {shown} is not available: {tool_name} is in no registry"), line
    assert "[y/N]" not in line and DEAD_ENGINE not in line  # no question, no engine
    assert tree(user_home) == before  # not even ~/.llm-docker


# -- the first-use offer ----------------------------------------------------------------------

OFFER = "enable INSTALL_TMUX_VANILLA and rebuild the image? [y/N] "


@pytest.mark.parametrize("answer", ["n\n", "\n", "whatever\n", "\x04"], ids=["no", "enter", "other", "eof"])
def test_no_or_eof_prints_the_exact_fix_and_changes_nothing(
        pty_processes: list[PtyProcess], user_home: Path, project: Path, answer: str) -> None:
    conf = user_conf(user_home)
    before = tree(user_home)
    terminal = launch(pty_processes, user_home, project, "-t")
    terminal.expect(OFFER, WAIT_SECONDS)
    terminal.type(answer)
    code, lines = ended(terminal, "run cld --build")
    assert code == 1, lines
    assert lines[-1] == (f"cld: -t needs INSTALL_TMUX_VANILLA: set INSTALL_TMUX_VANILLA=true in {conf} "
                         "and run cld --build")
    assert tree(user_home) == before


def test_ctrl_c_at_the_question_exits_130_with_nothing_written(
        pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    user_conf(user_home)
    before = tree(user_home)
    terminal = launch(pty_processes, user_home, project, "-t")
    terminal.expect(OFFER, WAIT_SECONDS)
    terminal.type("\x03")  # the terminal's interrupt character: SIGINT to the launcher
    code, lines = ended(terminal, "nothing written")
    assert code == 130, lines
    assert lines[-1] == "cld: interrupted — nothing started, nothing written"
    assert tree(user_home) == before


def test_without_a_terminal_it_never_asks(user_home: Path, project: Path) -> None:
    conf = user_conf(user_home, "INSTALL_TMUX_TEAM=false\n")
    result = subprocess.run(command("cld", "-tt", "2"), cwd=project, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=WAIT_SECONDS,
                            env=launcher_env(user_home, DOCKER_HOST=DEAD_ENGINE, LLM_DOCKER_LAUNCH_SERVER="off"))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"cld: -tt needs INSTALL_TMUX_TEAM: set INSTALL_TMUX_TEAM=true in {conf} "
                             "and run cld --build\n")
    assert conf.read_text() == "INSTALL_TMUX_TEAM=false\n"


def test_yes_writes_the_key_keeps_the_users_lines_and_goes_on_with_the_launch(
        pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    conf = user_conf(user_home)
    terminal = launch(pty_processes, user_home, project, "-t", tool="ocd")
    terminal.expect("ocd: -t needs INSTALL_TMUX_VANILLA, which is off: " + OFFER, WAIT_SECONDS)
    terminal.type("y\n")
    # past every question the launch goes on — to the engine, a dead socket here
    code, lines = ended(terminal, f"cannot reach the Docker engine at {DEAD_ENGINE}")
    assert code == EXIT_ENGINE, lines
    assert f"ocd: wrote INSTALL_TMUX_VANILLA=true to {conf} — rebuilding the image" in lines
    assert conf.read_text() == USER_CONF.replace("INSTALL_TMUX_VANILLA=false", "INSTALL_TMUX_VANILLA=true")
    assert oct(conf.stat().st_mode & 0o777) == oct(0o640)  # the file's own mode kept


# -- -t inside a host tmux --------------------------------------------------------------------

NEST_PROMPT = "[1/2, default 1] "
HOST_TMUX = "/tmp/tmux-1000/default,1,0"
BARE_NOTICE = "cld: already inside tmux: running claude bare in this pane (-t asks on a terminal whether to nest)"


def test_inside_tmux_choice_1_runs_bare_and_needs_no_tmux_setting(
        pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    user_conf(user_home)  # INSTALL_TMUX_VANILLA=false: only a nested launch would need it
    terminal = launch(pty_processes, user_home, project, "-t", TMUX=HOST_TMUX, TMUX_PANE="%1")
    terminal.expect(NEST_PROMPT, WAIT_SECONDS)
    assert "cld: you are already inside tmux: [1] run claude bare in this pane" in terminal.text
    terminal.type("3\n")  # not a choice: asked again
    terminal.expect("3\r\ncld: you are already inside tmux", WAIT_SECONDS)
    terminal.type("1\n")
    code, lines = ended(terminal, f"cannot reach the Docker engine at {DEAD_ENGINE}")
    assert code == EXIT_ENGINE, lines
    assert not any("[y/N]" in line for line in lines)


def test_inside_tmux_choice_2_nests_so_the_tmux_setting_is_asked_for(
        pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    user_conf(user_home)
    terminal = launch(pty_processes, user_home, project, "-t", TMUX=HOST_TMUX)
    terminal.expect(NEST_PROMPT, WAIT_SECONDS)
    terminal.type("2\n")
    terminal.expect(OFFER, WAIT_SECONDS)
    terminal.type("n\n")
    code, lines = ended(terminal, "run cld --build")
    assert code == 1, lines


def test_inside_tmux_eof_runs_bare_with_a_notice(
        pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    user_conf(user_home)
    terminal = launch(pty_processes, user_home, project, "-t", TMUX=HOST_TMUX)
    terminal.expect(NEST_PROMPT, WAIT_SECONDS)
    terminal.type("\x04")
    code, lines = ended(terminal, f"cannot reach the Docker engine at {DEAD_ENGINE}")
    assert code == EXIT_ENGINE, lines
    assert BARE_NOTICE in lines


def test_inside_tmux_without_a_terminal_runs_bare_with_a_notice(user_home: Path, project: Path) -> None:
    user_conf(user_home)
    result = subprocess.run(command("cld", "-t"), cwd=project, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=WAIT_SECONDS,
                            env=launcher_env(user_home, DOCKER_HOST=DEAD_ENGINE, LLM_DOCKER_LAUNCH_SERVER="off",
                                             TMUX=HOST_TMUX))
    assert result.returncode == EXIT_ENGINE, result.stderr
    assert result.stderr.splitlines()[0] == BARE_NOTICE
    assert "INSTALL_TMUX_VANILLA" not in result.stderr
