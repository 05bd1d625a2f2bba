"""`llm-docker supervise`, `attach` and `status` end to end: real processes, the real
engine, the fake agent (which answers "slot?" with its slot), a real tmux server, and a
second, unprivileged user sharing the engine."""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.processes import PtyProcess, command, launcher_env, project_containers, run, slots_json, wait_until
from testbed.unprivileged import CAGE_UID, User

#: every test here needs the engine and the test image (absent engine: failure, never a skip)
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


class Supervisor:
    """`llm-docker supervise` in the background, its stderr collected as it comes."""

    def __init__(self, *args: str, cwd: Path, home: Path, **extra: str) -> None:
        self.process = subprocess.Popen(command("llm-docker", "supervise", *args), cwd=cwd,
                                        env=launcher_env(home, **extra), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = ""

    def _read(self, timeout: float) -> None:
        assert self.process.stderr is not None
        ready, _, _ = select.select([self.process.stderr], [], [], timeout)
        if ready:
            chunk = os.read(self.process.stderr.fileno(), 65536)
            self.stderr += chunk.decode(errors="replace")

    def expect(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.stderr:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen within {timeout}s:\n{self.stderr}")
            if self.process.poll() is not None:
                self._read(0.5)
                if needle not in self.stderr:
                    raise AssertionError(f"supervisor exited ({self.process.returncode}) before {needle!r}:\n"
                                         f"{self.stderr}")
            self._read(0.1)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(signum)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        self._read(0.2)
        return self.process.wait(timeout=1)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def supervisors() -> Iterator[list[Supervisor]]:
    started: list[Supervisor] = []
    yield started
    for supervisor in started:
        supervisor.kill()


def start(supervisors: list[Supervisor], *args: str, project: Path, home: Path, **extra: str) -> Supervisor:
    supervisor = Supervisor(*args, cwd=project, home=home, **extra)
    supervisors.append(supervisor)
    return supervisor


def status(home: Path, project: Path) -> list[dict]:
    result = run("llm-docker", "status", "--json", cwd=project, home=home)
    assert result.returncode == 0, result.stderr
    return [row for row in json.loads(result.stdout) if row["project"] == str(project)]


def every_status(home: Path, project: Path, *args: str) -> list[dict]:
    """`llm-docker status --json` as it is, whichever projects it lists."""
    result = run("llm-docker", "status", "--json", *args, cwd=project, home=home)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def container_of(home: Path, project: Path, slot: int) -> str:
    return next(row["container"] for row in status(home, project) if row["slot"] == slot)


def saved_slots(home: Path, project: Path) -> dict[int, str]:
    return {row["slot"]: row["session_id"] for row in slots_json(home) if row["project"] == str(project)}


def test_four_headless_slots_one_killed_then_sigterm(project: Path, home: Path,
                                                     supervisors: list[Supervisor]) -> None:
    supervisor = start(supervisors, "-n", "4", "--layout", "none", project=project, home=home)
    supervisor.expect("4/4 slots ready in")
    rows = status(home, project)
    assert sorted(row["slot"] for row in rows) == [1, 2, 3, 4]
    assert all(row["tool"] == "claude" and row["health"] == "running" for row in rows)
    assert len({row["container"] for row in rows}) == 4

    subprocess.run(["docker", "kill", container_of(home, project, 2)], check=True, capture_output=True)
    supervisor.expect("claude slot 2: the container was killed from outside — the other slots go on")
    supervisor.expect("slot 2 saved:")
    wait_until(lambda: sorted(row["slot"] for row in status(home, project)) == [1, 3, 4])

    assert supervisor.stop(signal.SIGTERM) == 143
    assert project_containers(project) == []
    assert sorted(saved_slots(home, project)) == [1, 2, 3, 4]
    assert len(set(saved_slots(home, project).values())) == 4


def test_sigint_stops_every_slot(project: Path, home: Path, supervisors: list[Supervisor]) -> None:
    """Ctrl-C stops every slot as gracefully as SIGTERM, and the launch says "interrupted" (130)."""
    supervisor = start(supervisors, "-n", "2", "--layout", "none", "--tool", "opencode", project=project,
                       home=home)
    supervisor.expect("2/2 slots ready in")
    assert supervisor.stop(signal.SIGINT) == 130, supervisor.stderr
    assert project_containers(project) == []
    assert sorted(saved_slots(home, project)) == [1, 2]
    assert "the agent exited" not in supervisor.stderr  # stopped, not died


#: The dying agent's last words, in colour and with a carriage return, as a CLI prints them.
DYING_WORDS = ("printf '\\033[1;31mError: 401 invalid x-api-key\\033[0m\\n' >&2; "
               "printf '\\033]0;a title\\007see the docs\\r\\n'")


def test_a_dead_agent_leaves_its_last_lines(project: Path, home: Path) -> None:
    """A headless agent that fails: the notice and the structured log carry what it printed
    last, as plain text — the container, and its output, are gone right after."""
    process = subprocess.run(command("cld", "2", "--", "-p", "x", "--fake-sh", DYING_WORDS, "--fake-exit", "1"),
                             cwd=project, env=launcher_env(home), stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=180)
    assert process.returncode == 1, process.stderr
    for slot in (1, 2):
        notice = f"cld: claude slot {slot}: the agent exited (code 1); the other slots go on — its last output:\n"
        assert notice in process.stderr
        after = process.stderr.split(notice, 1)[1].splitlines()
        shown = [line.removeprefix("  | ") for line in itertools.takewhile(lambda ln: ln.startswith("  | "), after)]
        assert "Error: 401 invalid x-api-key" in shown and "see the docs" in shown, process.stderr
        assert shown[-1].startswith("ANSWER:") and 1 < len(shown) <= 20
    assert "\x1b" not in process.stderr and "\x07" not in process.stderr  # (the title went with its sequence)
    log = [json.loads(line) for line in (home / ".llm-docker" / "logs" / "llm-docker.log").read_text().splitlines()]
    exits = {entry["slot"]: entry for entry in log if entry.get("event") == "agent-exited"}
    assert sorted(exits) == [1, 2]
    for entry in exits.values():
        assert entry["code"] == 1
        assert "Error: 401 invalid x-api-key" in entry["last_output"]
        assert "see the docs" in entry["last_output"]
        assert len(entry["last_output"]) <= 20
    assert project_containers(project) == []


def test_status_lists_only_your_slots_unless_all(project: Path, home: Path, supervisors: list[Supervisor],
                                                 user: User) -> None:
    """Two users on one engine: each `status` shows its caller's slots; `--all` shows both,
    with their users; the text starts with a header row."""
    mine = start(supervisors, "-n", "1", "--layout", "none", project=project, home=home)
    theirs_project = user.project()
    theirs = user.popen("llm-docker", "supervise", "-n", "1", "--layout", "none", cwd=theirs_project,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        mine.expect("1/1 slots ready in")

        def listed(rows: list[dict]) -> set[str]:
            return {row["project"] for row in rows} & {str(project), str(theirs_project)}

        def user_status(*args: str) -> list[dict]:
            result = user.run("llm-docker", "status", "--json", *args, cwd=theirs_project)
            assert result.returncode == 0, result.stderr
            return list(json.loads(result.stdout))

        wait_until(lambda: listed(user_status()) == {str(theirs_project)}, timeout=120)
        assert listed(every_status(home, project)) == {str(project)}
        everyone = every_status(home, project, "--all")
        assert listed(everyone) == {str(project), str(theirs_project)}
        owners = {row["project"]: (row["uid"], row["user"]) for row in everyone}
        assert owners[str(project)] == (os.getuid(), "root")
        assert owners[str(theirs_project)][0] == CAGE_UID
        assert listed(user_status("--all")) == {str(project), str(theirs_project)}

        text = run("llm-docker", "status", cwd=project, home=home).stdout.splitlines()
        assert text[0].split() == ["TOOL", "SLOT", "PROJECT", "CONTAINER", "UPTIME", "PORTS", "HEALTH"]
        assert any(str(project) in line for line in text) and not any(str(theirs_project) in line for line in text)
        text_all = run("llm-docker", "status", "--all", cwd=project, home=home).stdout.splitlines()
        assert text_all[0].split()[:2] == ["USER", "TOOL"]
        [their_line] = [line for line in text_all if str(theirs_project) in line]
        assert their_line.split()[0] == owners[str(theirs_project)][1]
    finally:
        theirs.terminate()
        theirs.wait(timeout=90)
    assert mine.stop() == 143


def test_cld_n_is_supervise(project: Path, home: Path, supervisors: list[Supervisor]) -> None:
    process = subprocess.Popen(command("cld", "3"), cwd=project, env=launcher_env(home), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(status(home, project)) == 3, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "3/3 slots ready" in stderr.decode()
    assert project_containers(project) == []
    assert sorted(saved_slots(home, project)) == [1, 2, 3]


def test_continue_resumes_every_slot(project: Path, home: Path, supervisors: list[Supervisor]) -> None:
    first = start(supervisors, "-n", "2", "--layout", "none", project=project, home=home)
    first.expect("2/2 slots ready")
    first.stop()
    before = saved_slots(home, project)
    again = start(supervisors, "-n", "2", "-c", "--layout", "none", project=project, home=home)
    again.expect("2/2 slots ready")
    assert again.stop() == 143
    assert saved_slots(home, project) == before


@pytest.mark.parametrize(("args", "message"), [
    (("-n", "0"), "the number of slots must be between 1 and 99"),
    (("-n", "x"), "the number of slots must be a number"),
    (("--layout", "grid"), "invalid choice: 'grid'"),
    (("--delay", "99"), "the delay must be between 0 and 60"),
    (("/nonexistent/folder",), "/nonexistent/folder: not an existing directory"),
])
def test_bad_supervise_input_is_a_one_line_error(project: Path, home: Path, args: tuple[str, ...],
                                                 message: str) -> None:
    result = run("llm-docker", "supervise", *args, cwd=project, home=home)
    assert result.returncode == 2
    assert message in result.stderr
    assert project_containers(project) == []


def test_attach_detach_and_closing_the_window(project: Path, home: Path, supervisors: list[Supervisor],
                                              pty_processes: list[PtyProcess]) -> None:
    supervisor = start(supervisors, "-n", "2", "--layout", "none", project=project, home=home)
    supervisor.expect("2/2 slots ready")
    window = PtyProcess("llm-docker", "attach", "claude", "2", str(project), cwd=project, home=home)
    pty_processes.append(window)
    window.expect("attached to claude slot 2")
    window.expect("detach: Ctrl-P Ctrl-Q")
    window.type("slot?\r")
    window.expect("SLOT:2")
    window.type("\x10\x11")  # Ctrl-P Ctrl-Q
    window.expect("detached from claude slot 2")
    assert window.wait() == 0
    assert sorted(row["slot"] for row in status(home, project)) == [1, 2]

    again = PtyProcess("llm-docker", "attach", "claude", "2", cwd=project, home=home)
    pty_processes.append(again)
    again.expect("attached to claude slot 2")
    again.type("slot?\r")
    again.expect("SLOT:2\r\nECHO:slot?")  # a second attach reaches the same agent
    again.close_terminal()
    supervisor.expect("claude slot 2: the agent exited")
    supervisor.expect("slot 2 saved:")
    assert [row["slot"] for row in status(home, project)] == [1]
    assert supervisor.stop() == 143
    assert project_containers(project) == []


def test_attach_to_a_slot_that_is_not_running(project: Path, home: Path,
                                              pty_processes: list[PtyProcess]) -> None:
    window = PtyProcess("llm-docker", "attach", "opencode", "7", cwd=project, home=home)
    pty_processes.append(window)
    window.expect(f"no running opencode slot 7 in {project}")
    assert window.wait() == 1
    piped = run("llm-docker", "attach", "claude", "1", cwd=project, home=home)
    assert piped.returncode == 2 and "needs a terminal" in piped.stderr


def tmux(tmux_dir: Path, *args: str) -> str:
    result = subprocess.run(["tmux", *args], env={**os.environ, "TMUX_TMPDIR": str(tmux_dir)},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tmux_layout_one_window_per_slot(project: Path, home: Path, tmp_path: Path,
                                         pty_processes: list[PtyProcess]) -> None:
    tmux_dir = tmp_path / "tmux"
    tmux_dir.mkdir()
    terminal = PtyProcess("llm-docker", "supervise", "-n", "3", "--layout", "tmux", "--delay", "0.2",
                          cwd=project, home=home, TMUX_TMPDIR=str(tmux_dir))
    pty_processes.append(terminal)
    try:
        wait_until(lambda: len(status(home, project)) == 3, timeout=60)
        wait_until(lambda: subprocess.run(["tmux", "list-windows", "-a"], capture_output=True,
                                          env={**os.environ, "TMUX_TMPDIR": str(tmux_dir)}).stdout.count(b"\n") == 3)
        session = tmux(tmux_dir, "list-sessions", "-F", "#{session_name}").split()[0]
        assert session.startswith("llm-docker-claude-app-")
        windows = tmux(tmux_dir, "list-windows", "-t", session, "-F", "#{window_name}").split()
        assert windows == ["claude:1", "claude:2", "claude:3"]
        for slot in (1, 2, 3):  # each window answers from its own container
            target = f"{session}:claude:{slot}"

            def answers(target: str = target, slot: int = slot) -> bool:
                tmux(tmux_dir, "send-keys", "-t", target, "slot?", "Enter")
                time.sleep(0.3)
                return f"SLOT:{slot}" in tmux(tmux_dir, "capture-pane", "-p", "-J", "-S", "-500", "-t", target)

            wait_until(answers)

        tmux(tmux_dir, "kill-window", "-t", f"{session}:claude:2")  # closing one window ends only that slot
        wait_until(lambda: sorted(row["slot"] for row in status(home, project)) == [1, 3])
        wait_until(lambda: 2 in saved_slots(home, project))

        terminal.process.send_signal(signal.SIGTERM)
        assert terminal.wait() == 143
        assert project_containers(project) == []
        assert sorted(saved_slots(home, project)) == [1, 2, 3]
    finally:
        subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(tmux_dir)},
                       capture_output=True)
