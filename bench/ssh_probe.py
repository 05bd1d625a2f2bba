"""Idle cost of the SSH probe: the supervisor's CPU while one slot sits idle and the probe runs.

    python -m bench.ssh_probe [--seconds 60] [--interval 15] [--slots 1]

Launches `llm-docker supervise -n SLOTS --layout none` with the REAL agent image (built
through the product, as the tests do) as the unprivileged test user, waits until
`llm-docker status` shows every slot's SSH reachable, then reads the supervisor process's
own CPU time (utime + stime from /proc/<pid>/stat) at the start and end of the window and
prints the share of one CPU it used. The agent is left alone (EXIT_TO_DOCKER=true keeps the
container up in zsh), so what remains is the supervisor idling: the probe every INTERVAL
seconds, the event stream, the log task. Needs root (to become the test user) and the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from testbed.agent_images import TEST_IMAGE_CONFIG, build_agent_images
from testbed.unprivileged import User

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (the process alone, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=int, default=15, help="LLM_DOCKER_SSH_PROBE_SECONDS")
    parser.add_argument("--slots", type=int, default=1)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as build_home:
        built = build_agent_images(Path(build_home))
        if built.returncode != 0:
            raise SystemExit(f"building the agent images failed:\n{built.stderr[-2000:]}")
    user = User()
    process = None
    try:
        user.write(user.state_home / "llm-docker.conf",
                   TEST_IMAGE_CONFIG + f"EXIT_TO_DOCKER=true\nLLM_DOCKER_SSH_PROBE_SECONDS={arguments.interval}\n"
                   "LLM_DOCKER_SSH_HOST_PORT=38884\n", mode=0o600)
        project = user.project("bench")
        log = (user.home / "supervise.log").open("wb")
        process = user.popen("llm-docker", "supervise", "-n", str(arguments.slots), "--layout", "none",
                             cwd=project, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the slots did not come up:\n{(user.home / 'supervise.log').read_text()[-2000:]}")
            result = user.run("llm-docker", "status", "--json", cwd=project)
            rows = [r for r in json.loads(result.stdout or "[]") if r["project"] == str(project)]
            if len(rows) == arguments.slots and all(r["ssh"] and r["ssh"]["reachable"] for r in rows):
                break
            time.sleep(0.5)
        time.sleep(2)  # start-up settles
        before, began = cpu_seconds(process.pid), time.monotonic()
        time.sleep(arguments.seconds)
        used, elapsed = cpu_seconds(process.pid) - before, time.monotonic() - began
        rows = [r for r in json.loads(user.run("llm-docker", "status", "--json", cwd=project).stdout)
                if r["project"] == str(project)]
        print(f"slots: {arguments.slots}, probe interval: {arguments.interval} s, window: {elapsed:.1f} s")
        print(f"ssh: {[r['ssh'] for r in rows]}")
        print(f"supervisor CPU while idle with the probe running: {used:.3f} s = {100 * used / elapsed:.3f}% "
              f"of one CPU (budget: < 1%)")
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)
        user.cleanup()


if __name__ == "__main__":
    main()
