"""A launcher whose liveness cannot be determined from here is never cleaned up.

A real launch is killed with SIGKILL (its guardian first, so nobody cleans up) and reaped:
its container and its slot lease (an unfinished journal row) stay behind, and from this
host the launcher is provably dead. `llm-docker gc` run where procfs is missing (a mount
namespace with an empty /proc: neither the boot id, the PID namespace nor the process can
be read — as in a sandbox) keeps both; the same `gc` with procfs then removes them, which
shows that the first one had something to clean and declined.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

import psutil
import pytest

from launch.portability import PORTABLE_ONLY_VARIABLE
from testbed.processes import ENTRY, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

REAPER = """
import subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
child.wait()  # reaped: the pid is gone, not a zombie
"""
#: `unshare` + an empty tmpfs over /proc, then the command (as the user, through setpriv).
WITHOUT_PROCFS = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                  'mount -t tmpfs none /proc && exec "$@"', "sh"]


def open_leases(user: User) -> int:
    with sqlite3.connect(f"file:{user.state_home / 'state.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM launches WHERE finished_at IS NULL").fetchone()[0])


def switch() -> dict[str, str]:
    """The test switch reaches `gc` too when this run has it (`launch.portability`)."""
    return {PORTABLE_ONLY_VARIABLE: "1"} if os.environ.get(PORTABLE_ONLY_VARIABLE) == "1" else {}


def test_gc_without_procfs_keeps_a_dead_launchers_container_and_slot(user: User) -> None:
    project = user.project()
    helper = subprocess.Popen([*user.prefix(), str(user.python), "-c", REAPER, str(user.python), "-c", ENTRY["cld"]],
                              cwd=project, env=user.env(**switch()), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        assert helper.stdout is not None
        launcher = int(helper.stdout.readline())
        wait_until(lambda: len(project_containers(project)) == 1, timeout=60)
        guardians = [child for child in psutil.Process(launcher).children()
                     if "supervisor.guardian" in " ".join(child.cmdline())]
        assert len(guardians) == 1
        os.kill(guardians[0].pid, signal.SIGKILL)  # nobody left to clean up ...
        os.kill(launcher, signal.SIGKILL)
        helper.wait(timeout=30)
        assert not psutil.pid_exists(launcher)
        assert open_leases(user) == 1

        blind = subprocess.run([*WITHOUT_PROCFS, *user.command("llm-docker", "gc")], cwd=project,
                               env=user.env(**switch()), capture_output=True, text=True, timeout=120)
        assert blind.returncode == 0, blind.stderr
        # (the count includes other tests' containers of the same test uid, running meanwhile)
        assert "container(s) whose launcher cannot be checked from here" in blind.stdout, blind.stdout
        assert "removed 0 container(s)" in blind.stdout, blind.stdout
        assert len(project_containers(project)) == 1  # ... and gc without procfs keeps them
        assert open_leases(user) == 1

        seeing = user.run("llm-docker", "gc", cwd=project, **switch())
        assert seeing.returncode == 0, seeing.stderr
        assert project_containers(project) == [], seeing.stdout  # with procfs: provably dead, cleaned
        assert open_leases(user) == 0
    finally:
        helper.kill()
        helper.wait()
        for leftover in project_containers(project):
            subprocess.run(["docker", "rm", "-f", leftover], capture_output=True)
