"""`cld 2` under every state of tmux, on a real tmux server of the test's own (its own
`TMUX_TMPDIR`, never the user's server) with real clients in pseudo-terminals, the real
engine and the fake agent (which answers "slot?" with its slot and ends on "exit").

What must hold in every case (`supervisor/tasks/windows.py`, `launch/layout.py`): one window
per slot in a session of the launch's own; no traceback; when the launch ends, a client the
launch switched is back on the session it came from, other clients were never touched, and
the launch's session is gone."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch.layout import LAST_WINDOW_NOTE
from testbed import tmux as testbed_tmux
from testbed.processes import PtyProcess, command, launcher_env, project_containers, wait_until

#: every test here needs the engine and the test image (absent engine: failure, never a skip)
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

SESSION_PREFIX = "llm-docker-claude-app-"
#: What a launch must never print, whatever tmux does.
CRASH_MARKERS = ("Traceback", "ExceptionGroup")


class TmuxServer(testbed_tmux.TmuxServer):
    """The test's own tmux server (`testbed/tmux.py`), and where the launch's session is."""

    def launch_session(self) -> str | None:
        return next((name for name in self.sessions() if name.startswith(SESSION_PREFIX)), None)

    def pane_text(self, target: str) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-2000", "-t", target)



@pytest.fixture
def tmux() -> Iterator[TmuxServer]:
    server = TmuxServer()
    try:
        yield server
    finally:
        server.close()


def start_session(tmux: TmuxServer, name: str, cwd: Path) -> None:
    """A session as a user has one: a shell in a window."""
    tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "40", "-c", str(cwd), "sh")


def attach_client(tmux: TmuxServer, session: str, cwd: Path, home: Path,
                  pty_processes: list[PtyProcess]) -> tuple[PtyProcess, str]:
    """A user's terminal attached to `session`: the client process and its name."""
    before = set(tmux.clients())
    client = PtyProcess("tmux", argv=["tmux", "attach-session", "-t", f"={session}"], cwd=cwd, home=home,
                        env=tmux.env)
    pty_processes.append(client)
    wait_until(lambda: len(set(tmux.clients()) - before) == 1, timeout=30)
    [name] = set(tmux.clients()) - before
    assert tmux.clients()[name] == session
    return client, name


def windows_answer(tmux: TmuxServer, session: str, slots: tuple[int, ...] = (1, 2)) -> None:
    """Each slot's window reaches its own slot's agent."""
    for slot in slots:
        target = f"={session}:=claude:{slot}"

        def answers(target: str = target, slot: int = slot) -> bool:
            tmux("send-keys", "-t", target, "slot?", "Enter")
            time.sleep(0.3)
            return f"SLOT:{slot}" in tmux.pane_text(target)

        wait_until(answers, timeout=60)


def windows_answer_then_exit(tmux: TmuxServer, session: str) -> None:
    """Both windows answer; then every agent is told to exit, which ends the launch."""
    wait_until(lambda: tmux("list-windows", "-t", f"={session}:", "-F", "#{window_name}").split()
               == ["claude:1", "claude:2"], timeout=60)
    windows_answer(tmux, session)
    for slot in (1, 2):
        tmux("send-keys", "-t", f"={session}:=claude:{slot}", "exit", "Enter")


def run_in_pane(tmux: TmuxServer, session: str, project: Path, home: Path) -> None:
    """Type `cld 2` (with the test's launcher environment) into `session`'s shell, the way a
    user inside tmux starts it; the shell then prints `RC=<exit code>`."""
    environment = launcher_env(home)
    environment.pop("TERM")  # the pane's own (tmux sets it)
    script = project.parent / "cld-2.sh"
    script.write_text(f"cd {shlex.quote(str(project))}\n"
                      f"env {' '.join(shlex.quote(f'{k}={v}') for k, v in environment.items())} "
                      f"{shlex.join(command('cld', '2'))}\n"
                      'echo "RC=$?"\n')
    tmux("send-keys", "-t", f"={session}:", f"sh {shlex.quote(str(script))}", "Enter")


def exit_code_in_pane(tmux: TmuxServer, session: str) -> int:
    wait_until(lambda: "RC=" in tmux.pane_text(f"={session}:"), timeout=120)
    text = tmux.pane_text(f"={session}:")
    assert not any(marker in text for marker in CRASH_MARKERS), text
    return int(text.rsplit("RC=", 1)[1].split()[0])


@pytest.mark.parametrize("state", ["no server", "a server without clients", "another client attached"])
def test_outside_tmux(state: str, project: Path, home: Path, tmux: TmuxServer,
                      pty_processes: list[PtyProcess]) -> None:
    """`cld 2` in a terminal outside tmux: the terminal attaches to the launch's own session
    (a server is started when there is none); another client stays where it is; when the
    agents exit, the session is gone, the terminal is back and `cld` exits 0."""
    other = None
    if state != "no server":
        start_session(tmux, "prev", project)
    if state == "another client attached":
        other, other_name = attach_client(tmux, "prev", project, home, pty_processes)
    assert tmux.running() == (state != "no server")

    launcher = PtyProcess("cld", "2", cwd=project, home=home, TMUX_TMPDIR=str(tmux.folder))
    pty_processes.append(launcher)
    wait_until(lambda: tmux.launch_session() is not None, timeout=120)
    session = tmux.launch_session()
    assert session is not None
    wait_until(lambda: session in tmux.clients().values(), timeout=60)  # the launcher's terminal shows it
    if other is not None:
        assert tmux.clients()[other_name] == "prev"
    windows_answer_then_exit(tmux, session)

    assert launcher.wait(timeout=120) == 0, launcher.text
    assert not any(marker in launcher.text for marker in CRASH_MARKERS), launcher.text
    assert session not in tmux.sessions()
    if state == "no server":
        wait_until(lambda: not tmux.running())  # its only session gone, the server went too
    else:
        assert "prev" in tmux.sessions()
    if other is not None:
        assert other.process.poll() is None and tmux.clients().get(other_name) == "prev"
    assert project_containers(project) == []


def test_inside_tmux_the_client_comes_back(project: Path, home: Path, tmux: TmuxServer,
                                           pty_processes: list[PtyProcess]) -> None:
    """`cld 2` typed in a tmux pane: the client showing it is switched to the launch's own
    session, and when the launch ends it is back on the session it came from — still in
    tmux, not detached, even after its last window was left — and the launch's session is
    gone; another client in another session is not touched."""
    # Sessions besides the one the client comes from: where tmux itself sends a client whose
    # session vanished (3.3a: "older", created first) is not where it came from.
    start_session(tmux, "older", project)
    start_session(tmux, "prev", project)
    client, name = attach_client(tmux, "prev", project, home, pty_processes)
    run_in_pane(tmux, "prev", project, home)

    wait_until(lambda: tmux.clients().get(name, "").startswith(SESSION_PREFIX), timeout=120)
    session = tmux.clients()[name]
    # another terminal, in yet another session, stays there
    start_session(tmux, "elsewhere", project)
    other, other_name = attach_client(tmux, "elsewhere", project, home, pty_processes)
    assert tmux.sessions() == sorted(["elsewhere", "older", "prev", session])
    windows_answer(tmux, session)

    # Slot 1's agent exits: its window closes. Slot 2's window is detached (the slot runs on):
    # the session's last window stays — the session does not vanish under the client (which
    # tmux would then send to "older") — and can attach again.
    tmux("send-keys", "-t", f"={session}:=claude:1", "exit", "Enter")
    wait_until(lambda: tmux("list-windows", "-t", f"={session}:", "-F", "#{window_name}").split() == ["claude:2"])
    tmux("send-keys", "-t", f"={session}:=claude:2", "C-p", "C-q")
    wait_until(lambda: LAST_WINDOW_NOTE in tmux.pane_text(f"={session}:=claude:2"))
    assert tmux.clients()[name] == session
    tmux("respawn-pane", "-k", "-t", f"={session}:=claude:2")
    windows_answer(tmux, session, (2,))
    tmux("send-keys", "-t", f"={session}:=claude:2", "exit", "Enter")

    assert exit_code_in_pane(tmux, "prev") == 0
    assert "switched this tmux client to session" in tmux.pane_text("=prev:")
    assert client.process.poll() is None, "the client was dropped out of tmux"
    assert tmux.clients() == {name: "prev", other_name: "elsewhere"}
    assert other.process.poll() is None
    assert tmux.sessions() == ["elsewhere", "older", "prev"]
    assert project_containers(project) == []


def test_inside_tmux_without_a_client(project: Path, home: Path, tmux: TmuxServer) -> None:
    """`cld 2` in a pane no client shows (a detached session, a script): the windows open in
    the launch's own session, the launch says where, switches nobody and does not crash;
    its end removes the session."""
    start_session(tmux, "prev", project)
    run_in_pane(tmux, "prev", project, home)

    wait_until(lambda: tmux.launch_session() is not None, timeout=120)
    session = tmux.launch_session()
    assert session is not None
    wait_until(lambda: any(needle in tmux.pane_text("=prev:") for needle in ("no tmux client", "RC=")), timeout=60)
    text = tmux.pane_text("=prev:")
    assert not any(marker in text for marker in CRASH_MARKERS), text
    assert f"no tmux client shows this pane — the slots' windows are in tmux session {session}: " \
           f"`tmux switch-client -t {session}`" in text
    windows_answer_then_exit(tmux, session)

    assert exit_code_in_pane(tmux, "prev") == 0
    assert tmux.sessions() == ["prev"]
    assert tmux.clients() == {}
    assert project_containers(project) == []


def test_no_tmux_installed(project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    """`--layout tmux` where no tmux can be run: one notice, the slot runs headless, a
    signal stops it as usual — no traceback."""
    launcher = PtyProcess("llm-docker", "supervise", "-n", "1", "--layout", "tmux", cwd=project, home=home,
                          PATH="/nonexistent")
    pty_processes.append(launcher)
    launcher.expect("cld: tmux: No such file or directory — the slots keep running headless", timeout=120)
    launcher.expect("1/1 slots ready in")
    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=120) == 143
    assert not any(marker in launcher.text for marker in CRASH_MARKERS), launcher.text
    assert project_containers(project) == []
