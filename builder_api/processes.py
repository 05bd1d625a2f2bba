"""Stopping a job's or the runtime's whole process group, and knowing when it is gone.

The group leader exiting is not enough: `sh -c "server & worker"` leaves children in the
group. A stop signals the group, waits (bounded) until no member is running, and sends
SIGKILL to whatever is left. Zombies waiting for a reaper count as gone: they run nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
from anyio.abc import Process

MEMBER_CHECK_S = 0.05


def kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_running(pgid: int) -> bool:
    """Whether any non-zombie process is still in process group `pgid` (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
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
