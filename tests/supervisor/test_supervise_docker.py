"""`llm-docker supervise`, `attach` and `status` end to end: real processes, the real
engine, the fake agent (which answers "slot?" with its slot), a real tmux server."""

from __future__ import annotations

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
    supervisor = start(supervisors, "-n", "2", "--layout", "none", "--tool", "opencode", project=project,
                       home=home)
    supervisor.expect("2/2 slots ready in")
    assert supervisor.stop(signal.SIGINT) != 0
    assert project_containers(project) == []
    assert sorted(saved_slots(home, project)) == [1, 2]


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
