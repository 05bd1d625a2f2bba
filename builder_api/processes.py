"""Stopping a job's or the runtime's whole process group, and knowing when it is gone.

The group leader exiting is not enough: `sh -c "server & worker"` leaves children in the
group. A stop signals the group, waits (bounded) until no member is running, and sends
SIGKILL to whatever is left. Zombies waiting for a reaper count as gone: they run nothing.
"""

from __future__ import annotations

import os
import signal

import anyio
import psutil
from anyio.abc import Process

MEMBER_CHECK_S = 0.05


def kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_running(pgid: int) -> bool:
    """Whether any non-zombie process is still in process group `pgid`. Through psutil on
    every platform (no `/proc` scan of our own): its process list and status are what
    procfs says on Linux and what `sysctl` says on macOS, and `getpgid` is POSIX."""
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue  # gone meanwhile, or not ours to look at (then not in our group either)
    return False


async def _until_gone(process: Process, pgid: int) -> None:
    await process.wait()
    while group_running(pgid):
        await anyio.sleep(MEMBER_CHECK_S)


async def stop_group(process: Process, signum: int, grace_s: float) -> None:
    """`signum` to the group, then SIGKILL after `grace_s` if any member still runs."""
    kill_group(process.pid, signum)
    with anyio.move_on_after(grace_s):
        await _until_gone(process, process.pid)
        return
    kill_group(process.pid, signal.SIGKILL)
    with anyio.move_on_after(2):
        await _until_gone(process, process.pid)
