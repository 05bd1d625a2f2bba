"""Cooperating tasks of one supervisor run, one module each.

Every task has the same small shape — a module with a `NAME` and an
`async def run(supervisor: Supervisor) -> None` — and runs in the supervisor's task group
until its job is done or the group is cancelled. Adding a task (the SSH probe, the
builder-api) is a new module appended to `TASKS`, not surgery on the others.

* `container` creates, starts, attaches (terminal proxy), waits for and removes each
  slot's container;
* `signals` turns SIGINT/SIGTERM/SIGHUP/SIGQUIT into forwarded signals or graceful stops;
* `watchdog` ends the run when the parent process, the container or the engine goes away;
* `slots` saves each slot's session once its container is gone — also on a crash;
* `tripwire` quarantines what the agent changed of the project's host-executed surface
  once its container is gone (`supervisor.tripwire`) — also on a crash;
* `windows` (supervised launches) reports when every slot is ready and opens one window
  per slot: tmux, macOS terminal windows, or none;
* `builder_api` serves the project's builder-api with `-a` (stopping with the launch) or
  starts it in the background with `-ab`;
* `host_ports` relays the slot's granted HOST_PORTS from its gateway to the host's
  loopback over unix sockets only the gateway mounts (`launch.network`);
* `ssh_probe` checks each slot's sshd over SSH (asyncssh: the install's key, the pinned host
  key) after it starts and then periodically; results feed `llm-docker status`, one notice
  per change;
* `logs` writes the structured log to `$LLM_DOCKER_HOME/logs/llm-docker.log`, rotated.
"""

from __future__ import annotations

from typing import Protocol

from supervisor.context import Supervisor
from supervisor.tasks import (
    builder_api,
    container,
    host_ports,
    logs,
    signals,
    slots,
    ssh_probe,
    tripwire,
    watchdog,
    windows,
)


class Task(Protocol):
    NAME: str

    async def run(self, supervisor: Supervisor) -> None: ...


TASKS: tuple[Task, ...] = (logs, signals, watchdog, host_ports, container, slots, tripwire, windows,
                           builder_api, ssh_probe)
