"""Finishing what dead launchers left behind, without ever touching a live one.

A launcher is identified by its pid and kernel start time *and* where it ran: host id,
boot id, PID namespace (container labels; the journal's `launcher_start`), and its uid
(labels). `launch.liveness` decides: only a launcher that is provably dead from here is
dead — a pid that is merely not visible from here (another user's, another PID
namespace's, another host's on a shared engine) keeps its container. `gc` touches only
the caller's own containers. Upstream's `--clean` removed every llm-docker container,
including other terminals' running sessions.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from engine.client import Engine
from engine.errors import EngineError
from launch.liveness import Here, Liveness, journal_liveness, launcher_from_labels, launcher_liveness, read_here
from launch.network import LABEL_GATEWAY_FOR, LABEL_GATEWAY_SLOT, gateway_name, gateway_ports_folder
from launch.spec import LABEL_PREFIX
from supervisor import tripwire
from supervisor.gateway import remove_gateway
from supervisor.gateway_folders import sweep_gateway_folders
from supervisor.slots import Notice, save_launch
from supervisor.store import StateStore

REMOVE_GRACE_SECONDS = 2


async def remove_container(docker: Engine, name: str) -> bool:
    """Stop (briefly) and remove a container; False if it did not exist."""
    container = docker.containers.get(name)
    try:
        await container.stop(grace_seconds=REMOVE_GRACE_SECONDS)
    except EngineError as error:
        if error.status == 404:
            return False
    try:
        await container.delete(force=True)
    except EngineError as error:
        if error.status != 404:
            raise
    return True


async def remove_launch_containers(docker: Engine, state_home: Path, container: str) -> None:
    """A dead launch's agent container and its gateway (never kept: only a launch that ended
    normally keeps its gateway), each gone already or removed."""
    await remove_container(docker, container)
    await remove_gateway(docker, gateway_name(container), gateway_ports_folder(state_home, gateway_name(container)))


async def settle_tripwire(state_home: Path, run_id: str, notice: Notice | None) -> None:
    """The tripwire of a launch whose launcher died (its container is gone now)."""
    report = await anyio.to_thread.run_sync(tripwire.settle, state_home, run_id, abandon_on_cancel=True)
    message = report.notice() if report is not None else None
    if message is not None and notice is not None:
        notice(message)


async def recover_dead_launches(store: StateStore, docker: Engine, state_home: Path,
                                notice: Notice | None = None, *, only: set[str] | None = None) -> int:
    """Remove the containers of dead launchers' unfinished launches and save their slots."""
    recovered = 0
    here = read_here()
    for launch in await store.unfinished_launches():
        if only is not None and launch.run_id not in only:
            continue
        if only is None and journal_liveness(launch.launcher_pid, launch.launcher_start, here) is not Liveness.DEAD:
            continue
        await remove_launch_containers(docker, state_home, launch.container)
        await settle_tripwire(state_home, launch.run_id, notice)
        await save_launch(store, launch, state_home, notice)
        recovered += 1
    return recovered


async def collect_garbage(store: StateStore, docker: Engine, state_home: Path,
                          notice: Notice | None = None) -> int:
    """Remove every container of the caller's whose launcher is provably dead; finish their
    saves. Other users' containers are never looked at; ours that cannot be judged from
    here are kept, and counted in one line."""
    removed = undecided = 0
    here = read_here()
    listed = await docker.containers.list(all=True, filters={"label": [f"{LABEL_PREFIX}launcher-pid"]})
    # agents before gateways: an agent shares its gateway's network namespace, and Podman
    # refuses to remove a container another one depends on (Docker does not mind the order)
    for container in sorted(listed, key=lambda c: LABEL_PREFIX + LABEL_GATEWAY_FOR in c.labels):
        if LABEL_PREFIX + LABEL_GATEWAY_SLOT in container.labels:
            # a gateway that may be kept: the launch that made it may be gone while a later
            # launch of its slot holds it; it ends with its lease, or by itself when kept
            continue
        verdict = container_liveness(container.labels, here)
        if verdict is None or verdict is Liveness.ALIVE:
            continue
        if verdict is Liveness.UNKNOWN:
            undecided += 1
            continue
        name = container.name
        if await remove_container(docker, container.id):
            removed += 1
            if notice is not None:
                notice(f"removed {name} (its launcher is gone)")
    if undecided and notice is not None:
        notice(f"kept {undecided} container(s) whose launcher cannot be checked from here (another host or "
               "PID namespace, or made by an older llm-docker); `docker rm` them if you know they are stale")
    await recover_dead_launches(store, docker, state_home, notice)
    await sweep_gateway_folders(docker, state_home)  # the folders of the gateways gone
    return removed


def container_liveness(labels: dict[str, str], here: Here) -> Liveness | None:
    """The liveness of a container's launcher; None when another uid launched it (not
    ours to judge); UNKNOWN when no uid was recorded (an older version made it)."""
    launcher = launcher_from_labels(labels, LABEL_PREFIX)
    if launcher.uid is None:
        return Liveness.UNKNOWN
    if launcher.uid != here.uid:
        return None
    return launcher_liveness(launcher, here)
