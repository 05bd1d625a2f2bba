"""The watchdog: end the run cleanly when what it depends on disappears.

The parent process is watched through a descriptor the event loop waits on: a pidfd on
Linux (readable when the process exits), a kqueue with `EVFILT_PROC`/`NOTE_EXIT` on macOS
and the BSDs (readable when the exit event is queued). The containers and the engine are
watched through the Engine API's event stream (an engine that drops the connection ends the
stream). A terminal hang-up arrives as SIGHUP (`signals`) or as EOF on the terminal
(`container`'s input pump). With neither (Linux before 5.3, or the test switch of
`launch.portability` on Linux, where kqueue does not exist) the parent is polled instead —
by asking who our parent is now, which a reused pid cannot fool: an orphan is re-parented
the moment its parent exits.
"""

from __future__ import annotations

import enum
import os
import select
import sys

import anyio

from launch.portability import linux_mechanisms
from launch.server_wire import SERVED_MARK
from launch.spec import LABEL_PREFIX
from supervisor.context import SlotRun, Supervisor
from supervisor.memory import report_process_killed

NAME = "watchdog"
#: After an `oom` event, how long to wait for the container to die before saying that only
#: a process in it was killed (when the agent itself was the victim, the removal says so).
OOM_GRACE_SECONDS = 3.0
#: Without pidfds or kqueue: how often to check whether the launching process is still our parent.
PARENT_POLL_SECONDS = 1.0


class ExitWatch(enum.Enum):
    """How the exit of a process is waited for."""

    PIDFD = "pidfd"  # Linux >= 5.3
    KQUEUE = "kqueue"  # macOS, the BSDs
    POLL = "poll"  # neither: `getppid()` once a second (the parent only)


class ExitWatchUnavailable(Exception):
    """No descriptor can be waited on for this process's exit here: the caller polls."""


#: The name the tests and older callers know (the pidfd was the only descriptor).
PidfdUnavailable = ExitWatchUnavailable


def choose_exit_watch(*, linux_mechanisms: bool, has_pidfd: bool, has_kqueue: bool) -> ExitWatch:
    """The pure choice: a pidfd where Linux-only mechanisms are allowed and Python has
    `os.pidfd_open`; else a kqueue where `select.kqueue` exists; else polling."""
    if linux_mechanisms and has_pidfd:
        return ExitWatch.PIDFD
    if has_kqueue:
        return ExitWatch.KQUEUE
    return ExitWatch.POLL


def exit_watch_here() -> ExitWatch:
    """The choice for this platform and process (`launch.portability` may turn pidfds off)."""
    return choose_exit_watch(linux_mechanisms=linux_mechanisms(), has_pidfd=hasattr(os, "pidfd_open"),
                             has_kqueue=hasattr(select, "kqueue"))


async def run(supervisor: Supervisor) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(watch_parent, supervisor)
        group.start_soon(watch_engine, supervisor)


async def watch_parent(supervisor: Supervisor) -> None:
    parent = os.getppid()
    if parent <= 1:
        return  # started by init (nohup, a service): there is no launching process to watch
    if os.environ.get(SERVED_MARK):
        # forked by the launch server: our parent is the server, which may end any time;
        # the client watches the launching process and its end reaches us as a hang-up
        return
    await wait_for_parent_exit(parent)
    supervisor.log.warning("parent-exited", parent=parent)
    supervisor.stop_all("the launching terminal or process went away")


async def wait_for_parent_exit(parent: int) -> None:
    """Return once `parent` (our parent process) has exited: through a pidfd or a kqueue, or
    by polling `getppid()` where there are neither (never by `kill -0`, which a reused pid
    fools)."""
    try:
        await wait_for_exit(parent)
    except ExitWatchUnavailable:
        while os.getppid() == parent:
            await anyio.sleep(PARENT_POLL_SECONDS)


async def wait_for_exit(pid: int, watch: ExitWatch | None = None) -> None:
    """Return when process `pid` has exited (at once if it is already gone).

    The exit wakes the event loop's poller through a descriptor, instead of checking
    `kill -0` every few seconds like upstream's watchdog. `ExitWatchUnavailable` when there
    is none (`watch`: default `exit_watch_here()`; a kernel without pidfds says so at once)."""
    watch = exit_watch_here() if watch is None else watch
    if watch is ExitWatch.PIDFD:
        await _wait_pidfd(pid)
    elif watch is ExitWatch.KQUEUE:
        await _wait_kqueue(pid)
    else:
        raise ExitWatchUnavailable("no pidfd or kqueue here")


async def _wait_pidfd(pid: int) -> None:
    """A pidfd becomes readable when its process exits (Linux >= 5.3)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        raise ExitWatchUnavailable("no os.pidfd_open on this platform")
    try:
        pidfd = pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError as error:  # ENOSYS: a kernel before 5.3
        raise ExitWatchUnavailable(str(error)) from None
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def _wait_kqueue(pid: int) -> None:
    """A kqueue holding one `EVFILT_PROC`/`NOTE_EXIT` filter on `pid`: its descriptor is
    readable once the exit event is queued (a kqueue is itself pollable by the event loop's
    poller). Registering on a pid that is already gone fails with ESRCH: gone. (Type-checked
    with `mypy --platform darwin`; Linux has no kqueue.)"""
    if sys.platform == "linux" or sys.platform == "win32":
        raise ExitWatchUnavailable("no kqueue on this platform")
    else:
        queue = select.kqueue()
        try:
            change = select.kevent(pid, filter=select.KQ_FILTER_PROC,
                                   flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT, fflags=select.KQ_NOTE_EXIT)
            try:
                queue.control([change], 0, 0)
            except ProcessLookupError:
                return
            except OSError as error:
                raise ExitWatchUnavailable(str(error)) from None
            await anyio.wait_readable(queue.fileno())
        finally:
            queue.close()


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
