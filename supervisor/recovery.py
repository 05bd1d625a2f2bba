"""Finishing what dead launchers left behind, without ever touching a live one.

A launcher is identified by its pid *and* its kernel start time (journal columns and
container labels), so a recycled pid never makes a dead launcher look alive — or a live
one look dead. Upstream's `--clean` removed every llm-docker container, including other
terminals' running sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiodocker

from launch.hostfacts import process_alive
from launch.spec import LABEL_PREFIX
from supervisor.slots import Notice, save_launch
from supervisor.store import StateStore

REMOVE_GRACE_SECONDS = 2


async def remove_container(docker: aiodocker.Docker, name: str) -> bool:
    """Stop (briefly) and remove a container; False if it did not exist."""
    container = docker.containers.container(name)
    try:
        await container.stop(t=REMOVE_GRACE_SECONDS)
    except aiodocker.DockerError as error:
        if error.status == 404:
            return False
    try:
        await container.delete(force=True)
    except aiodocker.DockerError as error:
        if error.status != 404:
            raise
    return True


async def recover_dead_launches(store: StateStore, docker: aiodocker.Docker, state_home: Path,
                                notice: Notice | None = None, *, only: set[str] | None = None) -> int:
    """Remove the containers of dead launchers' unfinished launches and save their slots."""
    recovered = 0
    for launch in await store.unfinished_launches():
        if only is not None and launch.run_id not in only:
            continue
        if only is None and process_alive(launch.launcher_pid, launch.launcher_start):
            continue
        await remove_container(docker, launch.container)
        await save_launch(store, launch, state_home, notice)
        recovered += 1
    return recovered


async def collect_garbage(store: StateStore, docker: aiodocker.Docker, state_home: Path,
                          notice: Notice | None = None) -> int:
    """Remove every llm-docker container whose launcher is dead; finish their saves."""
    removed = 0
    filters = json.dumps({"label": [f"{LABEL_PREFIX}launcher-pid"]})
    for container in await docker.containers.list(all=True, filters=filters):
        labels = container._container.get("Labels") or {}  # noqa: SLF001 - list() keeps the summary here
        pid = int(labels.get(f"{LABEL_PREFIX}launcher-pid", "0") or 0)
        if pid and process_alive(pid, labels.get(f"{LABEL_PREFIX}launcher-start", "")):
            continue
        name = (container._container.get("Names") or [container.id])[0].lstrip("/")  # noqa: SLF001
        if await remove_container(docker, container.id):
            removed += 1
            if notice is not None:
                notice(f"removed {name} (its launcher is gone)")
    await recover_dead_launches(store, docker, state_home, notice)
    return removed
