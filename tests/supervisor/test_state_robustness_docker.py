"""A state database that cannot be used: one line and exit 2, never a traceback (real
engine, fake agent, launcher as uid 1000). A disk that fills during a session leaves the
save pending — journal row open, run folder kept — and the next launch finishes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch.errors import EXIT_USAGE as EXIT_STATE  # an unusable state database is a usage-class error
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import field, project_containers
from testbed.unprivileged import BASE, User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]



def one_line_error(result: subprocess.CompletedProcess[str], prefix: str, *needles: str) -> None:
    assert result.returncode == EXIT_STATE, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr


def test_a_corrupt_state_database(user: User) -> None:
    project = user.project()
    database = user.state_home / "state.db"
    user.write(database, "garbage, not SQLite\n" * 500, mode=0o600)
    result = user.run("cld", "--slot", "1", "--", "-p", "x", cwd=project)
    one_line_error(result, "cld: ", f"state database {database} is corrupt",
                   f"move it aside: mv {database} {database}.broken")
    assert project_containers(project) == []
    one_line_error(user.run("llm-docker", "slots", cwd=project), "llm-docker: ", "is corrupt")
    one_line_error(user.run("llm-docker", "gc", cwd=project), "llm-docker: ", "is corrupt")
    # the advice works
    user.shell(f"mv {database} {database}.broken", cwd=project, check=True)
    assert user.run("cld", "--slot", "1", "--", "-p", "x", cwd=project).returncode == 0


def test_a_read_only_state_database(user: User) -> None:
    project = user.project()
    first = user.run("cld", "--slot", "1", "--", "-p", "x", cwd=project)
    assert first.returncode == 0, first.stderr
    database = user.state_home / "state.db"
    database.chmod(0o444)
    result = user.run("cld", "--slot", "2", "--", "-p", "x", cwd=project)
    one_line_error(result, "cld: ", f"state database {database} is read-only", f"chmod u+w {database}")
    assert project_containers(project) == []
    listed = user.run("llm-docker", "slots", "--json", cwd=project)  # reading needs no write access
    assert listed.returncode == 0 and [row["slot"] for row in json.loads(listed.stdout)] == [1], listed.stderr
    assert list(user.state_home.glob("runs/*")) == []  # nothing left of the refused launch
    user.shell(result.stderr.split(": ")[-1], cwd=project, check=True)  # the advice: chmod u+w ...
    again = user.run("cld", "--slot", "2", "--", "-p", "x", cwd=project)
    assert again.returncode == 0, again.stderr


@pytest.fixture
def small_disk(user: User) -> Iterator[Path]:
    """A 3 MB tmpfs owned by the user, as its LLM_DOCKER_HOME."""
    folder = BASE / "small-disks" / user.home.name
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=3m,uid={user.uid},gid={user.gid},mode=0700", "tmpfs",
                    str(folder)], check=True)
    try:
        user.write(folder / "llm-docker.conf", f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n",
                   mode=0o600)
        os.lchown(folder / "llm-docker.conf", user.uid, user.gid)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


def test_a_disk_that_fills_during_the_session(user: User, small_disk: Path) -> None:
    project = user.project()
    home = {"LLM_DOCKER_HOME": str(small_disk)}
    fill = "dd if=/dev/zero of=/run/llm-docker/fill bs=64k 2>/dev/null; true"
    result = user.run("cld", "--slot", "1", "--", "-p", "x", "--fake-sh", fill, cwd=project, **home)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    session = field(result.stdout, "SESSION")[0]
    failures = [line for line in result.stderr.splitlines() if "the disk is full" in line]
    assert len(failures) == 1 and "the slot's save finishes on the next launch" in failures[0], result.stderr
    assert project_containers(project) == []
    # the evidence is kept: the run folder with its events file (and the agent's fill)
    fills = list(small_disk.glob("runs/*/fill"))
    assert len(fills) == 1 and (fills[0].parent / "events.jsonl").is_file()
    fills[0].unlink()  # the user frees space
    following = user.run("cld", "--", "-p", "next", cwd=project, **home)
    assert following.returncode == 0, following.stderr
    slots = user.run("llm-docker", "slots", "--json", cwd=project, **home)
    assert slots.returncode == 0, slots.stderr
    assert [(row["slot"], row["session_id"]) for row in json.loads(slots.stdout)] == [(1, session)]
    assert list(small_disk.glob("runs/*")) == []
