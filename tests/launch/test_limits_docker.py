"""MEMORY_LIMIT on the real engine: a hostile agent that allocates past its limit takes
down only its own container, the launcher says so in one line, another launch runs on."""

from __future__ import annotations

import subprocess

import pytest

from testbed.processes import field, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

#: The agent makes itself the OOM killer's first choice (as a bloated node process is),
#: then allocates far past the limit. 125 MiB is 32000 pages: the kernel scales
#: oom_score_adj by (limit in pages / 1000), rounded down, so a limit that is a multiple of
#: 1000 pages puts the agent surely above the allocating process.
LIMIT = "125m"
GREEDY_AGENT = "echo 1000 > /proc/$PPID/oom_score_adj; head -c 300m /dev/zero | tail"
#: Only a child (a compiler, a test run) allocates too much: it is killed, the agent runs on.
GREEDY_CHILD = "head -c 300m /dev/zero | tail"


def running(container: str) -> bool:
    result = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", container],
                            capture_output=True, text=True)
    return result.stdout.strip() == "true"


def test_out_of_memory_kills_only_its_own_container(user: User) -> None:
    bystander_project = user.project("bystander")
    bystander = user.popen("cld", "--slot", "2", cwd=bystander_project, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(project_containers(bystander_project)) == 1, timeout=60)
        [other] = project_containers(bystander_project)
        wait_until(lambda: running(other), timeout=30)
        project = user.project("greedy")
        result = user.run("cld", "--slot", "1", "--", "-p", "hi", "--fake-sh", GREEDY_AGENT, cwd=project,
                          MEMORY_LIMIT=LIMIT)
        assert result.returncode == 137, (result.stdout, result.stderr)
        assert ("cld: claude slot 1: the container ran out of memory (limit 125 MiB) and was killed — "
                "raise MEMORY_LIMIT in llm-docker.conf") in result.stderr.splitlines()
        assert "killed from outside" not in result.stderr
        assert project_containers(project) == []
        # the other launch did not notice a thing
        assert running(other) and bystander.poll() is None
        survivor = user.run("cld", "--", "-p", "hi", "--fake-sh", GREEDY_CHILD, cwd=project, MEMORY_LIMIT=LIMIT)
        assert survivor.returncode == 0, survivor.stderr
        assert field(survivor.stdout, "SH") == ["137"] and field(survivor.stdout, "ANSWER")
        assert ("cld: claude: the container ran out of memory (limit 125 MiB): the kernel killed a process in it "
                "— raise MEMORY_LIMIT in llm-docker.conf") in survivor.stderr.splitlines()
        assert running(other) and bystander.poll() is None
        stdout, _ = bystander.communicate(b"still here\nexit\n", timeout=60)
        assert bystander.returncode == 0
        assert field(stdout.decode(), "ECHO") == ["still here"]
    finally:
        if bystander.poll() is None:
            bystander.kill()
            bystander.wait()
