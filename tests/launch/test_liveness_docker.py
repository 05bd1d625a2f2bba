"""`llm-docker gc` on a shared engine: it removes only what is provably dead from here.

Containers are made directly through the engine with the labels a launcher elsewhere
would have written (another host, PID namespace or uid, an older version), and removed
by the test itself; a real launcher killed with SIGKILL whose parent never reaps it (a
zombie) shows that a dead launcher's container does go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from launch.liveness import ProcessState, identity_labels, read_here, read_process
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import ENTRY, containers, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]
PREFIX = "io.llm-docker."


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert read_process(child.pid).state is ProcessState.GONE
    return child.pid


def create(labels: dict[str, str]) -> str:
    args = [arg for key, value in labels.items() for arg in ("--label", f"{PREFIX}{key}={value}")]
    return subprocess.run(["docker", "create", *args, BUSYBOX_IMAGE, "sleep", "600"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_gc_removes_only_what_is_provably_dead_from_here(user: User) -> None:
    here = read_here()
    run = uuid.uuid4().hex
    pid, me = dead_pid(), read_process(os.getpid())
    assert me.start is not None
    mine = {**identity_labels(here), "launcher-uid": str(user.uid)}  # as if the user launched it here
    cases = {
        # name: (labels, removed?)
        "dead here": ({**mine, "launcher-pid": str(pid), "launcher-start": "1"}, True),
        "old boot": ({**mine, "launcher-boot": "another-boot", "launcher-pid": str(os.getpid()),
                      "launcher-start": me.start}, True),
        "other host": ({**mine, "launcher-host": "another-host", "launcher-pid": str(pid), "launcher-start": "1"},
                       False),
        "other pidns": ({**mine, "launcher-pidns": "4026599999", "launcher-pid": str(pid), "launcher-start": "1"},
                        False),
        "other uid": ({**mine, "launcher-uid": str(user.uid + 1), "launcher-pid": str(pid), "launcher-start": "1"},
                      False),
        "older version": ({"launcher-pid": str(pid), "launcher-start": "1"}, False),
    }
    made = {name: create({**labels, "test-run": run, "test-case": name}) for name, (labels, _) in cases.items()}
    try:
        result = user.run("llm-docker", "gc", cwd=user.home)
        assert result.returncode == 0, result.stderr
        left = set(containers(f"{PREFIX}test-run={run}"))
        survivors = {name for name, cid in made.items() if any(cid.startswith(short) for short in left)}
        assert survivors == {name for name, (_, removed) in cases.items() if not removed}, result.stdout
        assert "kept " in result.stdout and "cannot be checked from here" in result.stdout
    finally:
        subprocess.run(["docker", "rm", "-f", *made.values()], capture_output=True)


HELPER = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(600)  # never wait(): once killed, the launcher stays a zombie
"""


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def test_gc_cleans_up_after_a_zombie_launcher(user: User) -> None:
    project = user.project()
    helper = subprocess.Popen([*user.prefix(), str(user.python), "-c", HELPER, str(user.python), "-c", ENTRY["cld"]],
                              cwd=project, env=user.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert helper.stdout is not None
        launcher = int(helper.stdout.readline())
        wait_until(lambda: len(project_containers(project)) == 1, timeout=60)
        guardians = [pid for pid in children(launcher)
                     if b"supervisor.guardian" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(guardians) == 1
        os.kill(guardians[0], signal.SIGKILL)  # nobody left to clean up ...
        os.kill(launcher, signal.SIGKILL)
        wait_until(lambda: read_process(launcher).state is ProcessState.ZOMBIE, timeout=10)
        assert len(project_containers(project)) == 1
        result = user.run("llm-docker", "gc", cwd=project)  # ... but gc sees that the launcher is dead
        assert result.returncode == 0, result.stderr
        assert project_containers(project) == [], result.stdout
        assert read_process(launcher).state is ProcessState.ZOMBIE  # still unreaped: it was judged as a zombie
    finally:
        helper.kill()
        helper.wait()
        for leftover in project_containers(project):
            subprocess.run(["docker", "rm", "-f", leftover], capture_output=True)
