"""One slot, one launch at a time (real engine, fake agent, launcher as uid 1000).

Two `cld -c --slot 1` started at the same instant: exactly one runs, the other refuses in
one line (who holds the slot, how to proceed), exit 2, before any container exists. Across
the rounds the slot's session is never shared nor lost: each winner resumes what the
previous winner saved.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testbed.processes import ENTRY, field, project_containers
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

ROUNDS = 20


def held_at_the_gate(user: User, project: Path, *args: str) -> subprocess.Popen[str]:
    """`cld ARGS` as the user, waiting in `read` until the test writes a line to its stdin."""
    return subprocess.Popen([*user.prefix(), "/bin/sh", "-c", 'read go; exec "$@"', "sh", str(user.python), "-c",
                             ENTRY["cld"], *args], cwd=project, env=user.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_slot(user: User, project: Path) -> str | None:
    result = user.run("llm-docker", "slots", "--json", cwd=project, timeout=60)
    assert result.returncode == 0, result.stderr
    return next((row["session_id"] for row in json.loads(result.stdout)
                 if (row["tool"], row["project"], row["slot"]) == ("claude", str(project), 1)), None)


def test_two_launches_of_one_slot_at_the_same_instant(user: User) -> None:
    project = user.project()
    previous: str | None = None
    for round_number in range(ROUNDS):
        launches = [held_at_the_gate(user, project, "-c", "--slot", "1", "--", "-p", "x", "--fake-sleep", "2")
                    for _ in range(2)]
        for launch in launches:  # the gate: both released together
            assert launch.stdin is not None
            launch.stdin.write("go\n")
        for launch in launches:
            assert launch.stdin is not None
            launch.stdin.flush()
        results = [(launch, *launch.communicate(timeout=180)) for launch in launches]
        ran = [(out, err) for launch, out, err in results if launch.returncode == 0]
        refused = [(out, err) for launch, out, err in results if launch.returncode == 2]
        assert len(ran) == 1 and len(refused) == 1, (round_number, [(r[0].returncode, r[2]) for r in results])
        out, err = refused[0]
        assert field(out, "SESSION") == [], "the refused launch must not have run the agent"
        assert len(err.splitlines()) == 1, err
        assert err.startswith("cld: slot 1 is busy: the claude launch in terminal "), err
        assert "(pid " in err and "`llm-docker attach claude 1`" in err and "another --slot" in err
        out, err = ran[0]
        session = field(out, "ANSWER")[0]
        if previous is not None:
            assert field(out, "ARG")[1:3] == ["--resume", previous], (round_number, out, err)
            assert session == previous  # not lost: the winner resumed the saved session
        assert saved_slot(user, project) == session, f"round {round_number}"  # not shared, not replaced
        assert project_containers(project) == []
        previous = session
