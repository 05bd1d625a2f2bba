"""The watchdog: end the run cleanly when what it depends on disappears.

The parent process is watched through a pidfd (readable when it exits), the containers
and the engine through the Engine API's event stream (an engine that drops the connection
ends the stream). A terminal hang-up arrives as SIGHUP (`signals`) or as EOF on the
terminal (`container`'s input pump). Where there are no pidfds (macOS, Linux before 5.3)
the parent is polled instead — by asking who our parent is now, which a reused pid
cannot fool: an orphan is re-parented the moment its parent exits.
"""

from __future__ import annotations

import os

import anyio

from launch.spec import LABEL_PREFIX
from supervisor.context import SlotRun, Supervisor
from supervisor.memory import report_process_killed

NAME = "watchdog"
#: After an `oom` event, how long to wait for the container to die before saying that only
#: a process in it was killed (when the agent itself was the victim, the removal says so).
OOM_GRACE_SECONDS = 3.0
#: Without pidfds: how often to check whether the launching process is still our parent.
PARENT_POLL_SECONDS = 1.0


class PidfdUnavailable(Exception):
    """This platform or kernel has no pidfds: the caller falls back to polling."""


async def run(supervisor: Supervisor) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(watch_parent, supervisor)
        group.start_soon(watch_engine, supervisor)


async def watch_parent(supervisor: Supervisor) -> None:
    parent = os.getppid()
    if parent <= 1:
        return  # started by init (nohup, a service): there is no launching process to watch
    await wait_for_parent_exit(parent)
    supervisor.log.warning("parent-exited", parent=parent)
    supervisor.stop_all("the launching terminal or process went away")


async def wait_for_parent_exit(parent: int) -> None:
    """Return once `parent` (our parent process) has exited: through its pidfd, or by
    polling `getppid()` where there are none (never by `kill -0`, which a reused pid fools)."""
    try:
        await wait_for_exit(parent)
    except PidfdUnavailable:
        while os.getppid() == parent:
            await anyio.sleep(PARENT_POLL_SECONDS)


async def wait_for_exit(pid: int) -> None:
    """Return when process `pid` has exited (at once if it is already gone).

    A pidfd becomes readable when its process exits, so this sleeps in the event loop's
    poller instead of checking `kill -0` every few seconds like upstream's watchdog.
    `PidfdUnavailable` where the platform (macOS: no `os.pidfd_open`) or the kernel has none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        raise PidfdUnavailable("no os.pidfd_open on this platform")
    try:
        pidfd = pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError as error:  # ENOSYS: a kernel before 5.3
        raise PidfdUnavailable(str(error)) from None
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def watch_engine(supervisor: Supervisor) -> None:
    """Report containers that die on their own or run out of memory; stop everything when
    the engine connection drops."""
    launch_label = f"{LABEL_PREFIX}launch-id={supervisor.plan.facts.launch_id}"
    filters = {"type": ["container"], "label": [launch_label], "event": ["die", "oom"]}
    async with supervisor.docker.events(filters) as events, anyio.create_task_group() as group:
        async for event in events:
            by_id = {slot.container_id: slot for slot in supervisor.slots}
            slot = by_id.get(event.get("id"))
            if slot is None:
                continue
            if event.get("Action") == "oom":
                slot.out_of_memory = True
                supervisor.log.warning("container-oom", container=slot.spec.name)
                group.start_soon(_report_oom, supervisor, slot)
            elif not slot.stop_requested.is_set():
                code = event.get("Actor", {}).get("Attributes", {}).get("exitCode", "?")
                supervisor.log.info("container-died", container=slot.spec.name, exit_code=code)
        group.cancel_scope.cancel()
    if not all(slot.container_gone.is_set() for slot in supervisor.slots):
        supervisor.notice("lost the connection to the Docker engine — stopping")
        supervisor.stop_all("lost the connection to the Docker engine")


async def _report_oom(supervisor: Supervisor, slot: SlotRun) -> None:
    with anyio.move_on_after(OOM_GRACE_SECONDS):
        await slot.container_gone.wait()
    report_process_killed(supervisor, slot)
