"""A hostile agent replaces its events file (real engine, fake agent, launcher as uid 1000).

The agent owns /run/llm-docker/events.jsonl (the host's `runs/<container>/events.jsonl`).
Whatever it puts there — a FIFO, a symlink to /dev/zero or to a host-only file, 200 MB
without a newline — the launcher ends normally, says so in ONE notice, saves the slot from
the tool's own files, and leaves nothing blocked behind: `llm-docker slots` and the next
launch on that state folder work, and no guardian of that state folder is left running.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from testbed.processes import field, guardians, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

FALLBACK = "the session was attributed from the tool's own files"
SECRET_SESSION = "host-secret-session"
HOSTILE = {
    "fifo": ("rm -f $LLM_DOCKER_EVENTS; mkfifo $LLM_DOCKER_EVENTS", "the events file is not a regular file (FIFO)"),
    "symlink-to-dev-zero": ("ln -sf /dev/zero $LLM_DOCKER_EVENTS", "the events file is a symlink"),
    "symlink-to-host-file": ("ln -sf {secret} $LLM_DOCKER_EVENTS", "the events file is a symlink"),
    "huge": ("dd if=/dev/zero bs=1048576 count=200 2>/dev/null >> $LLM_DOCKER_EVENTS",
             "the events file has no session in its last 64 KiB"),
}


def saved_slots(user: User, project: Path) -> dict[int, str]:
    result = user.run("llm-docker", "slots", "--json", cwd=project, timeout=60)
    assert result.returncode == 0, result.stderr
    return {row["slot"]: row["session_id"] for row in json.loads(result.stdout)
            if row["tool"] == "claude" and row["project"] == str(project)}


def assert_nothing_left(user: User, project: Path) -> None:
    wait_until(lambda: not guardians(user.state_home), timeout=30)
    assert project_containers(project) == []


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_events_file_costs_only_the_attribution(user: User, case: str) -> None:
    project = user.project()
    secret = user.write(user.home / "secret.jsonl", json.dumps({"session_id": SECRET_SESSION}) + "\n")
    script, problem = HOSTILE[case]
    result = user.run("cld", "--slot", "1", "--", "-p", "x", "--fake-sh", script.format(secret=secret),
                      cwd=project, timeout=180)
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "SH") == ["0"], result.stdout
    session = field(result.stdout, "SESSION")[0]
    notices = [line for line in result.stderr.splitlines() if FALLBACK in line]
    assert len(notices) == 1 and problem in notices[0], result.stderr
    assert "Traceback" not in result.stderr
    assert f"slot 1 saved: {session}" in result.stderr
    assert_nothing_left(user, project)
    assert saved_slots(user, project) == {1: session}  # never the planted SECRET_SESSION
    again = user.run("cld", "-c", "--slot", "1", "--", "-p", "again", cwd=project, timeout=120)
    assert again.returncode == 0, again.stderr
    assert field(again.stdout, "ANSWER") == [session]
    assert FALLBACK not in again.stderr
    assert_nothing_left(user, project)


def test_sigkilled_launcher_with_a_fifo_events_file_is_saved_by_the_guardian(user: User, tmp_path: Path) -> None:
    """The old guardian blocked for good reading the FIFO (and held state.db's write lock)."""
    project = user.project()
    output = tmp_path / "stdout"
    with open(output, "wb") as stdout:
        launcher = user.popen("cld", "--slot", "2", "--", "-p", "x", "--fake-sleep", "120", "--fake-sh",
                              HOSTILE["fifo"][0], cwd=project, stdin=subprocess.DEVNULL, stdout=stdout,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "READY" in output.read_text(), timeout=60)
        events = list(user.state_home.glob("runs/*/events.jsonl"))
        assert len(events) == 1 and stat.S_ISFIFO(os.lstat(events[0]).st_mode)
        session = field(output.read_text(), "SESSION")[0]
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        wait_until(lambda: project_containers(project) == [] and not guardians(user.state_home), timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert saved_slots(user, project) == {2: session}
    again = user.run("cld", "-c", "--slot", "2", "--", "-p", "again", cwd=project, timeout=120)
    assert again.returncode == 0, again.stderr
    assert field(again.stdout, "ANSWER") == [session]
