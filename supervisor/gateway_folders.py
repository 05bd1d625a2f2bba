"""Sweep the host folders of gateways that no longer exist.

A gateway's host folder (`$LLM_DOCKER_HOME/gateways/<digest>/`: its HOST_PORTS sockets, its
lease socket when it may be kept) is removed by the launch that holds the gateway when the
gateway ends. A kept gateway that nobody took ends by itself, and one that a crash, `gc` or
a later launch removed has nobody left to remove its folder: without a sweep they pile up,
one per kept launch. The sweep removes the folders that no gateway container mounts any
more, and only those old enough that no launch can be between preparing one and creating
its gateway.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from engine.client import Engine
from engine.errors import EngineError
from launch.network import GATEWAY_FOLDER_NAME, GATEWAYS_FOLDER, LABEL_GATEWAY_FOR
from launch.spec import LABEL_PREFIX

#: A folder younger than this is left alone: a launch may have just prepared it for the
#: gateway it is about to create (that takes milliseconds; this is generous).
SWEEP_AGE_SECONDS = 300.0


async def sweep_gateway_folders(docker: Engine, state_home: Path, *, now: float | None = None) -> int:
    """Remove this state home's gateway folders that no gateway container (in any state)
    mounts and that are older than `SWEEP_AGE_SECONDS`; how many were removed. The engine's
    answer missing: nothing is removed (a folder in use is never guessed at)."""
    root = state_home / GATEWAYS_FOLDER
    stale = _old_folders(root, time.time() if now is None else now)
    if not stale:
        return 0  # no engine call on the common path
    try:
        listed = await docker.containers.list(all=True, filters={"label": [LABEL_PREFIX + LABEL_GATEWAY_FOR]})
    except EngineError:
        return 0
    mounted = {Path(str(mount.get("Source", ""))) for container in listed
               for mount in container.summary.get("Mounts") or ()}
    removed = 0
    for folder in stale:
        # as named and as resolved: the engine may show a bind's source either way
        if any(source.is_relative_to(candidate) for source in mounted
               for candidate in (folder, Path(os.path.realpath(folder)))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _old_folders(root: Path, now: float) -> list[Path]:
    """The gateway folders directly in `root` (real folders with a gateway folder's name,
    never a link) last changed before `now - SWEEP_AGE_SECONDS`."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = []
    for name in names:
        if not GATEWAY_FOLDER_NAME.fullmatch(name):
            continue
        try:
            info = os.lstat(root / name)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_mtime < now - SWEEP_AGE_SECONDS:
            found.append(root / name)
    return found
