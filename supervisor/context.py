"""The shared state of one supervisor run: the plan, the engine, the store, and its slots.

Every supervisor task has the same small shape (see `supervisor.tasks`): it receives the
`Supervisor` and runs until its job is done or it is cancelled. Tasks talk to each other
only through the events and fields here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream

from engine.client import Engine
from launch.plan import LaunchPlan
from launch.spec import ContainerSpec
from supervisor.gateway import GatewayHolders
from supervisor.printable import printable
from supervisor.ssh_keys import InstallKeys
from supervisor.store import Launch, StateStore

#: Seconds Docker waits after SIGTERM before it kills the tool, on a graceful stop.
STOP_GRACE_SECONDS = 5.0
#: Upper bound for removing a container during cleanup, whatever else happens.
CLEANUP_SECONDS = 15.0


@dataclasses.dataclass
class SlotRun:
    """One container of the launch, from creation to its saved slot."""

    spec: ContainerSpec
    launch: Launch
    run_folder: Path
    stop_requested: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    stop_reason: str | None = None
    started: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    #: Set when the agent first writes to its terminal (supervised slots), or when the
    #: container is gone without having done so; `ready_after` is None in that case.
    ready: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    ready_after: float | None = None
    container_gone: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    saved: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    #: Set once the tripwire has been settled (`tasks.tripwire`), whatever it found.
    surface_checked: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    container_id: str | None = None
    #: Set by `tasks.host_ports` once the slot's HOST_PORTS forwarders listen (at once
    #: when it has none); `host_ports_error` says why they could not.
    host_ports_ready: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    host_ports_error: str | None = None
    #: The engine reported that the container hit its memory limit (`watchdog`).
    out_of_memory: bool = False
    memory_reported: bool = False
    exit_code: int | None = None
    error: str | None = None

    def request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.stop_requested.set()

    @property
    def label(self) -> str:
        slot = self.launch.slot
        return f"{self.launch.tool}{f' slot {slot}' if slot is not None else ''}"


@dataclasses.dataclass
class Supervisor:
    plan: LaunchPlan
    docker: Engine
    store: StateStore
    slots: list[SlotRun]
    log: structlog.typing.FilteringBoundLogger
    interactive: bool
    log_lines: MemoryObjectReceiveStream[str] | None = None
    raw_terminal: bool = False
    #: While another program (tmux) owns the terminal, notices wait here and are printed after.
    held_notices: list[str] | None = None
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    #: The install's SSH keys and host-key pin (`supervisor.ssh_keys`); None when SSH is off.
    ssh_keys: InstallKeys | None = None
    #: The launch's network gateways, each held by one task (`supervisor.gateway`).
    gateways: GatewayHolders | None = None

    @property
    def supervised(self) -> bool:
        return self.plan.request.supervised

    def mark_ready(self, slot: SlotRun) -> None:
        if not slot.ready.is_set():
            slot.ready_after = time.monotonic() - self.started_at
            slot.ready.set()

    @property
    def state_home(self) -> Path:
        return self.plan.facts.state_home

    async def for_each_slot(self, job: Callable[[Supervisor, SlotRun], Coroutine[Any, Any, None]]) -> None:
        """Run `job` for every slot concurrently; return when all are done."""
        async with anyio.create_task_group() as group:
            for slot in self.slots:
                group.start_soon(job, self, slot)

    def stop_all(self, reason: str) -> None:
        for slot in self.slots:
            slot.request_stop(reason)

    def notice(self, message: str) -> None:
        """Tell the user something, in a way that survives a raw-mode terminal."""
        ending = "\r\n" if self.raw_terminal else "\n"
        message = printable(message)
        self.log.info("notice", message=message)
        if self.held_notices is not None:
            self.held_notices.append(message)
            return
        write_stderr(f"{self.plan.request.tool.launcher}: {message}{ending}")

    def release_notices(self) -> None:
        held, self.held_notices = self.held_notices or [], None
        for message in held:
            write_stderr(f"{self.plan.request.tool.launcher}: {message}\n")


async def after_container_gone(slot: SlotRun, job: Callable[[], Awaitable[None]], *, seconds: float,
                               done: anyio.Event) -> None:
    """Once the slot's container is gone, run `job` — shielded and bounded by `seconds`, so
    it also runs while the task group is being cancelled (a crash elsewhere) — and set
    `done` whatever happens. What must happen after every container (the slot's save, the
    tripwire) is written this way."""
    try:
        await slot.container_gone.wait()
    finally:
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CLEANUP_SECONDS + 5):
                    await slot.container_gone.wait()
                with anyio.move_on_after(seconds):
                    await job()
        finally:
            done.set()


def write_stderr(text: str) -> None:
    """Write to the terminal if it is still there; a closed terminal is not an error."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
