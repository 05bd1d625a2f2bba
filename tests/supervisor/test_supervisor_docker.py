"""The supervisor end to end: real `cld`/`ocd` processes, the real engine, the fake agent.

Each scenario checks what the user cares about: no container left behind within the bound,
the slot saved, the terminal restored, the exit code right.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from launch.liveness import identity_labels, read_here
from supervisor.store import DATABASE
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import (
    PtyProcess,
    field,
    guardians,
    project_containers,
    run,
    slot_session,
    slots_json,
    wait_until,
)
from testbed.unprivileged import User

#: every test here needs the engine and the test image (absent engine: failure, never a skip)
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


def start_interactive(pty_processes: list[PtyProcess], program: str, *args: str, project: Path,
                      home: Path) -> PtyProcess:
    process = PtyProcess(program, *args, cwd=project, home=home)
    pty_processes.append(process)
    process.expect("READY")
    return process


# -- headless -------------------------------------------------------------------------

def test_headless_claude_slot_roundtrip(project: Path, home: Path) -> None:
    first = run("cld", "--slot", "1", "--", "-p", "hi", cwd=project, home=home)
    assert first.returncode == 0, first.stderr
    session = field(first.stdout, "ANSWER")[0]
    assert field(first.stdout, "ARG")[:3] == ["--dangerously-skip-permissions", "--session-id", session]
    assert "slot 1 saved" in first.stderr
    rows = [r for r in slots_json(home) if r["tool"] == "claude"]
    assert rows == [{"tool": "claude", "project": str(project), "slot": 1, "session_id": session,
                     "workdir": "/root/Projects/app", "updated": rows[0]["updated"]}]
    again = run("cld", "-c", "--slot", "1", "--", "-p", "again", "--fake-exit", "7", cwd=project, home=home)
    assert again.returncode == 7
    assert field(again.stdout, "ARG")[1:3] == ["--resume", session]
    assert field(again.stdout, "ANSWER") == [session]
    assert project_containers(project) == []


def test_headless_opencode_slot_roundtrip(project: Path, home: Path) -> None:
    first = run("ocd", "--slot", "2", "--", "run", "hi", cwd=project, home=home)
    assert first.returncode == 0, first.stderr
    session = field(first.stdout, "ANSWER")[0]
    assert session.startswith("ses_")
    assert slot_session(home, "opencode", project, 2) == session
    again = run("ocd", "-c", "--slot", "2", "--", "run", "again", cwd=project, home=home)
    assert field(again.stdout, "ARG")[:2] == ["--session", session]
    assert project_containers(project) == []


def test_stdin_is_forwarded_and_stdout_stderr_stay_separate(project: Path, home: Path) -> None:
    result = run("cld", cwd=project, home=home, stdin=b"line one\nline two\n")
    assert result.returncode == 0
    assert field(result.stdout, "ECHO") == ["line one", "line two"]


def test_continue_without_slot_follows_this_terminal(project: Path, home: Path) -> None:
    first = run("cld", "--", "-p", "a", cwd=project, home=home)
    session = field(first.stdout, "ANSWER")[0]
    other = project.parent / "other"
    other.mkdir()
    run("cld", "--", "-p", "elsewhere", cwd=other, home=home)  # another project, same terminal
    again = run("cld", "-c", "--", "-p", "b", cwd=project, home=home)
    assert field(again.stdout, "ARG")[1:3] == ["--resume", session]


def test_slots_are_per_project(project: Path, home: Path) -> None:
    other = project.parent / "other"
    other.mkdir()
    a = field(run("cld", "--slot", "1", "--", "-p", "x", cwd=project, home=home).stdout, "ANSWER")[0]
    b = field(run("cld", "--slot", "1", "--", "-p", "x", cwd=other, home=home).stdout, "ANSWER")[0]
    assert a != b
    assert slot_session(home, "claude", project, 1) == a
    assert slot_session(home, "claude", other, 1) == b


def test_clear_inside_is_followed(project: Path, home: Path) -> None:
    for hooks in ([], ["--fake-no-hooks"]):
        result = run("cld", "--slot", "3", "--", "-p", "x", "--fake-clear", *hooks, cwd=project, home=home)
        switched_to = field(result.stdout, "SESSION")[0]
        minted = field(result.stdout, "ARG")[2]
        assert switched_to != minted
        assert slot_session(home, "claude", project, 3) == switched_to, hooks


def test_missing_image_and_unreachable_engine_exit_125(project: Path, home: Path) -> None:
    result = run("cld", "--", "-p", "x", cwd=project, home=home, LLM_DOCKER_IMAGE="llm-docker-nope:latest")
    assert result.returncode == 125
    assert "image llm-docker-nope:latest (LLM_DOCKER_IMAGE) not found — build or load it" in result.stderr
    result = run("ocd", cwd=project, home=home, DOCKER_HOST="unix:///nonexistent.sock")
    assert result.returncode == 125
    assert "cannot reach the Docker engine" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("tool", ["cld", "ocd"])
def test_parallel_slots_in_one_folder_keep_their_sessions(project: Path, home: Path, tool: str) -> None:
    """Two slots launched at the same moment in the same folder, 20 times over."""
    passthrough = ["-p", "x"] if tool == "cld" else ["run", "x"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_number in range(20):
            futures = [pool.submit(run, tool, "--slot", str(slot), "--", *passthrough, cwd=project, home=home)
                       for slot in (1, 2)]
            results = [f.result() for f in futures]
            assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
            printed = [field(r.stdout, "SESSION")[0] for r in results]
            assert printed[0] != printed[1]
            saved = {row["slot"]: row["session_id"] for row in slots_json(home)
                     if row["tool"] == ("claude" if tool == "cld" else "opencode")}
            assert saved == {1: printed[0], 2: printed[1]}, f"round {round_number}"


def test_parallel_opencode_slots_without_hooks_stay_distinct(project: Path, home: Path) -> None:
    """Without the plugin's events, DB discovery with claims still never hands one session to both."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(5):
            futures = [pool.submit(run, "ocd", "--slot", str(slot), "--", "run", "x", "--fake-no-hooks",
                                   cwd=project, home=home) for slot in (1, 2)]
            results = [f.result() for f in futures]
            assert all(r.returncode == 0 and field(r.stdout, "SESSION") for r in results), \
                [(r.returncode, r.stdout, r.stderr) for r in results]
            printed = {field(r.stdout, "SESSION")[0] for r in results}
            saved = {row["session_id"] for row in slots_json(home) if row["tool"] == "opencode"}
            assert saved == printed and len(saved) == 2


# -- in a real terminal -----------------------------------------------------------------

def test_interactive_session_in_a_terminal(project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "cld", "--slot", "4", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    process.type("hello\r")
    process.expect("ECHO:hello")
    process.type("exit\r")
    assert process.wait() == 0
    assert process.attributes_restored()
    assert project_containers(project) == []
    assert slot_session(home, "claude", project, 4) == session


def test_closing_the_terminal(project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "ocd", "--slot", "1", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    assert len(project_containers(project)) == 1
    process.close_terminal()
    wait_until(lambda: project_containers(project) == [], timeout=5)
    assert process.wait(timeout=30) == 143  # the tool was stopped with SIGTERM
    assert slot_session(home, "opencode", project, 1) == session


@pytest.mark.parametrize(("signum", "expected_exit"), [(signal.SIGTERM, 143), (signal.SIGHUP, 143),
                                                       (signal.SIGINT, 130)])
def test_signals_to_the_supervisor(project: Path, home: Path, pty_processes: list[PtyProcess],
                                   signum: int, expected_exit: int) -> None:
    process = start_interactive(pty_processes, "cld", "--slot", "5", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    os.kill(process.process.pid, signum)
    assert process.wait(timeout=30) == expected_exit
    assert project_containers(project) == []
    assert process.attributes_restored()
    assert slot_session(home, "claude", project, 5) == session


def test_sigkill_of_the_supervisor(project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "cld", "--slot", "6", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    process.process.kill()
    process.wait()
    wait_until(lambda: project_containers(project) == [], timeout=10)
    assert slot_session(home, "claude", project, 6) == session


@pytest.mark.parametrize("state", ["removed", "unreadable"])
def test_sigkill_of_the_supervisor_with_its_state_gone_still_removes_its_containers(
        project: Path, home: Path, pty_processes: list[PtyProcess], state: str) -> None:
    """The guardian needs the journal for the slot's save, never for removing the containers:
    an agent left running unsupervised (its gateway's lease gone) is the worse outcome."""
    process = start_interactive(pty_processes, "cld", "--slot", "6", project=project, home=home)
    state_home = home / ".llm-docker"
    assert project_containers(project)
    if state == "removed":
        shutil.rmtree(state_home)
    else:
        for database in state_home.glob(DATABASE + "*"):
            database.write_bytes(b"not a database\n" * 512)
    process.process.kill()
    process.wait()
    wait_until(lambda: project_containers(project) == [], timeout=10)
    assert state_home.exists() == (state == "unreadable")  # a deleted state folder is not made again


def test_sigkill_of_supervisor_and_guardian_is_finished_by_the_next_invocation(
        project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "cld", "--slot", "7", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    ours = guardians(home / ".llm-docker")  # this launch's guardian only, never another one on the machine
    assert len(ours) == 1, ours
    os.kill(ours[0], signal.SIGKILL)
    process.process.kill()
    process.wait()
    assert len(project_containers(project)) == 1  # nobody left to clean up ...
    assert slot_session(home, "claude", project, 7) == session  # ... until the next invocation does
    assert project_containers(project) == []


def test_container_killed_from_outside(project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "cld", "--slot", "8", project=project, home=home)
    session = process.text.split("SESSION:")[1].split()[0]
    subprocess.run(["docker", "kill", project_containers(project)[0]], check=True, capture_output=True)
    assert process.wait(timeout=30) == 137
    process.expect("the container was killed from outside", timeout=5)
    assert project_containers(project) == []
    assert process.attributes_restored()
    assert slot_session(home, "claude", project, 8) == session


def test_supervisor_is_idle_while_the_agent_waits(project: Path, home: Path,
                                                 pty_processes: list[PtyProcess]) -> None:
    process = start_interactive(pty_processes, "cld", project=project, home=home)

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    time.sleep(3)
    assert cpu_ticks() - before <= 2  # clock ticks (1/100 s): no polling loop
    process.type("exit\r")
    assert process.wait() == 0


def test_gc_never_touches_a_live_launcher(user: User) -> None:
    """Run as the test's own uid: gc only ever looks at the caller's containers, so the
    test never touches a real user's."""
    project = user.project("app")
    process = user.pty("cld", cwd=project)
    orphan = ""
    try:
        process.expect("READY")
        here = dataclasses.replace(read_here(), uid=user.uid)  # as if launched here by this user
        identity = [arg for key, value in identity_labels(here).items()
                    for arg in ("--label", f"io.llm-docker.{key}={value}")]
        orphan = subprocess.run(
            ["docker", "create", "--label", "io.llm-docker.launcher-pid=999999", "--label",
             f"io.llm-docker.project-root={project}", "--label", "io.llm-docker.launcher-start=1", *identity,
             BUSYBOX_IMAGE, "sleep", "60"], capture_output=True, text=True, check=True).stdout.strip()
        assert len(project_containers(project)) == 2
        result = user.run("llm-docker", "gc", cwd=project)
        assert result.returncode == 0, result.stderr
        assert "container(s) of dead launchers" in result.stdout  # (other tests' leftovers may count too)
        remaining = project_containers(project)
        assert len(remaining) == 1 and not orphan.startswith(remaining[0]), (result.stdout, result.stderr, process.text)
        process.type("exit\r")
        assert process.wait() == 0
    finally:
        process.cleanup()
        if orphan:  # ours: never left behind, even when an assertion failed before gc ran
            subprocess.run(["docker", "rm", "-f", orphan], capture_output=True)


def test_log_file_is_json_lines(project: Path, home: Path) -> None:
    run("cld", "--", "-p", "x", cwd=project, home=home)
    lines = (home / ".llm-docker" / "logs" / "llm-docker.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert "container-created" in events and "container-removed" in events


def test_offline_mode_has_no_route_out(project: Path, home: Path) -> None:
    (home / ".llm-docker" / "llm-docker.conf").write_text(
        f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\nINTERNET_ACCESS=false\n")
    result = run("cld", "--", "-p", "x", cwd=project, home=home)
    assert result.returncode == 0, result.stderr
    inspect = subprocess.run(["docker", "network", "inspect", "llm-docker-offline", "--format", "{{.Internal}}"],
                             capture_output=True, text=True, check=True)
    assert inspect.stdout.strip() == "true"
