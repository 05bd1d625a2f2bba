"""Initialise a tool's shared state exactly once, before any slot of a launch starts.

Every slot of a project mounts the same state folders (`launch.mounts.PERSISTENCE`), so two
OpenCode slots started together on a fresh state both ran OpenCode's database migrations on
the same new `opencode.db`: one of them died (`Failed query: CREATE TABLE workspace …`) and
its slot kept no session. The same race comes back whenever a new image brings new
migrations to an existing database.

What this module does, per launch of a tool listed in `INIT_COMMANDS` (OpenCode only: Claude
Code keeps one `.jsonl` file per session and has no shared database; the one file its slots
share, `~/.claude.json`, is seeded by the image's first-run hook with the same bytes
whichever slot comes first):

1. Take a host-side lock: `flock` on `<project state>/.<tool>-init`, a file in the project's
   state folder itself, which is never mounted into a container (only its sub-folders are)
   — the agent can neither write nor swap it. Opened with `O_NOFOLLOW`, 0600.
2. The lock file's content is the id of the image whose initialisation completed. If it is
   the image this launch runs, there is nothing to do: the lock is released at once (the
   usual case — one image inspect, one `flock` and a read of a few bytes).
3. Otherwise run a one-off init container under the lock: the slot's image, entrypoint, uid,
   limits and read-only paths, but ONLY the tool's state folders mounted (not the project),
   no network, every capability dropped, `opencode --pure db path` as its command (the
   real CLI opens its database and runs every pending migration, then prints the path;
   `--pure` loads no plugin). Exit 0 = migrations done: the image's id is written to the
   lock file, and the lock released. Every launcher waiting meanwhile then finds the id
   and starts its slots on a migrated database.

Why an init container and not "the first launcher's first slot initialises while holding
the lock": the end of the migrations would have to be read from the database the agent
writes (which migrations exist is known only to the CLI in the image), and its first slot
might be interactive and never finish. The init container's exit code is a signal from the
image's own code that the host never has to parse; the host reads no byte of the agent's
state here. It costs one short container (~2–3 s) at a project's first launch and after each
image rebuild, nothing more on other launches. It runs after the slots' leases are taken (a
busy slot is refused without waiting) and before any slot's container is created.

Settled migrations are not all: OpenCode opens its database with deferred transactions and
sets its busy timeout only after switching to WAL, so two instances starting at the same
moment can still fail with "database is locked". `space_starts` (awaited right before each
slot's start) lets the agents of one project start at least `START_SPACING` seconds apart,
across every launch: a second `flock`ed file beside the init marker, holding the time of the
last start. A lone launch never waits.

Everything is bounded: the init container gets `INIT_SECONDS` (a hostile database could
make the CLI hang), a launcher waits for another's lock at most `WAIT_SECONDS`, checking
every `launch.file_lock.POLL_SECONDS` (`flock` has no timeout; the lock is held only during an init). On a
failure or timeout the launch goes on with a one-line notice — the slots initialise the
database themselves, as before — and the next launch tries again. The init container is
labelled with the launcher's identity (as a gateway is), so `llm-docker gc` removes one
left by a launcher killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

from engine.client import Engine
from engine.containers import Container
from engine.errors import EngineError
from launch.file_lock import acquire_lock, open_lock_file
from launch.mounts import PERSISTENCE
from launch.spec import LABEL_PREFIX, UPSTREAM_PROJECT_LABEL, ContainerSpec
from launch.tools import Tool

#: How far apart the agents of one project start, per tool: OpenCode opens its shared
#: database with deferred transactions and sets its busy timeout only after switching to
#: WAL, so two instances starting at the same moment can fail with "database is locked"
#: (seen 1 round in 20 of the parallel test after the migrations were settled).
START_SPACING: dict[Tool, float] = {Tool.OPENCODE: 2.0}
#: The wait for the spacing lock; after it the slot starts anyway (with a notice).
SPACING_WAIT_SECONDS = 60.0
#: The command that initialises a tool's shared state (its image's own CLI).
INIT_COMMANDS: dict[Tool, tuple[str, ...]] = {Tool.OPENCODE: ("opencode", "--pure", "db", "path")}
#: What the init container may run for; a waiting launcher's bound is a little longer.
INIT_SECONDS = 60.0
WAIT_SECONDS = INIT_SECONDS + 30.0
#: Removing the init container (shielded from cancellation).
REMOVE_SECONDS = 15.0
#: The environment the init container keeps from the slot's: what the entrypoint needs to
#: know which tool it prepares — no secret, no SSH, no provider settings.
KEPT_ENV = ("HOME", "TOOL", "LLM_DOCKER_TOOL")
#: Labels of the slot's that would make the init container look like a slot to `status`.
SLOT_LABELS = ("tool", "project", "project-root", "slot", "ssh-port", "ssh-user")
MARKER_BYTES = 256

Notice = Callable[[str], None]


def spacing_path(project_home: Path, tool: Tool) -> Path:
    """The lock file whose content is when the project's last agent of `tool` started."""
    return project_home / f".{tool.value}-start"


async def space_starts(project_home: Path, tool: Tool, notice: Notice) -> None:
    """Return when this slot's agent may start: at least `START_SPACING` seconds after the
    project's previous start of `tool`, across every launch (a host-side `flock`, as for the
    init, on a file in no container's mount; it holds the time of the last start).
    Immediate for a lone launch; never raises."""
    spacing = START_SPACING.get(tool)
    if spacing is None:
        return
    try:
        async with locked(spacing_path(project_home, tool), wait=SPACING_WAIT_SECONDS) as fd:
            if fd is None:
                notice(f"other {tool.value} slots of this project kept starting for {SPACING_WAIT_SECONDS:g} s "
                       "— starting without waiting")
                return
            try:
                last = float(_read_marker(fd) or 0)
            except ValueError:
                last = 0.0
            now = time.time()
            if last <= now + spacing:  # a clock set back never makes a launch wait longer
                await anyio.sleep(max(0.0, last + spacing - now))
            _write_marker(fd, f"{time.time():.6f}")
    except OSError as error:
        notice(f"cannot space the starts of {tool.value} in this project ({error.strerror or error}) "
               "— starting at once")


def marker_path(project_home: Path, tool: Tool) -> Path:
    """The lock file, whose content is the id of the image last initialised with."""
    return project_home / f".{tool.value}-init"


def init_container_body(slot_create: Mapping[str, Any], tool: Tool) -> dict[str, Any]:
    """The init container's create body, derived from a slot's (`launch.spec`): same image,
    entrypoint, uid, limits and read-only paths; only the tool's state mounts; no network,
    no capability, no TTY, no stdin, no published port."""
    targets = {entry.target for entry in PERSISTENCE[tool]}
    host = copy.deepcopy(dict(slot_create["HostConfig"]))
    for key in ("PortBindings", "ExtraHosts", "Dns", "DnsSearch", "DnsOptions"):
        host.pop(key, None)
    host.update(Mounts=[mount for mount in host.get("Mounts", []) if mount["Target"] in targets],
                NetworkMode="none", AutoRemove=False, CapDrop=["ALL"], CapAdd=[],
                SecurityOpt=["no-new-privileges:true"])
    labels = {key: value for key, value in slot_create.get("Labels", {}).items()
              if key != UPSTREAM_PROJECT_LABEL and key.removeprefix(LABEL_PREFIX) not in SLOT_LABELS}
    return {
        "Image": slot_create["Image"],
        "Cmd": list(INIT_COMMANDS[tool]),
        "User": slot_create["User"],
        "WorkingDir": "/",
        "Env": [entry for entry in slot_create.get("Env", []) if entry.split("=", 1)[0] in KEPT_ENV],
        "Labels": labels,
        "Tty": False, "OpenStdin": False, "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "NetworkDisabled": True,
        "HostConfig": host,
    }


async def initialise_tool_state(docker: Engine, tool: Tool, spec: ContainerSpec, notice: Notice) -> None:
    """Make sure the tool's shared state of `spec`'s project was initialised by the image
    `spec` runs, once across every concurrent launch; never raises for a failed init."""
    if tool not in INIT_COMMANDS:
        return
    image = spec.create["Image"]
    try:
        image_id = str((await docker.images.inspect(image))["Id"])
    except EngineError as error:
        notice(f"cannot inspect {image} to initialise {tool.value}'s state ({error}) — the slots do it themselves")
        return
    try:
        # an init container that ran to its end is removed after the lock is released
        async with contextlib.AsyncExitStack() as removals, locked(marker_path(spec.project_home, tool)) as fd:
            if fd is None:
                notice(f"another launch is initialising {tool.value}'s state of this project for more than "
                       f"{WAIT_SECONDS:g} s — going on without waiting")
                return
            if _read_marker(fd) == image_id:
                return
            problem = await _run_init(docker, tool, spec, removals)
            if problem is not None:
                notice(f"{tool.value}'s state could not be initialised ({problem}) — the slots do it themselves")
                return
            _write_marker(fd, image_id)
    except OSError as error:
        notice(f"cannot lock {tool.value}'s state of this project ({error.strerror or error}) — going on without")


@contextlib.asynccontextmanager
async def locked(path: Path, *, wait: float | None = None) -> AsyncIterator[int | None]:
    """`path` opened (created 0600, never through a symlink) and locked exclusively; None
    after `wait` seconds (default `WAIT_SECONDS`) without the lock. Closing the descriptor
    releases it."""
    fd = open_lock_file(path)
    try:
        yield fd if await acquire_lock(fd, WAIT_SECONDS if wait is None else wait, anyio.sleep) else None
    finally:
        os.close(fd)


def _read_marker(fd: int) -> str:
    return os.pread(fd, MARKER_BYTES, 0).decode("utf-8", errors="replace").strip()


def _write_marker(fd: int, text: str) -> None:
    """Written under the lock; a crash midway leaves a marker that matches no image (the
    next launch initialises again) or no time (the next start does not wait): harmless."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{text}\n".encode(), 0)
    os.fsync(fd)


async def _run_init(docker: Engine, tool: Tool, spec: ContainerSpec, removals: contextlib.AsyncExitStack) -> str | None:
    """Run the init container to its end; why it failed, or None. One that ended is removed
    by `removals` (after the lock is released: the waiting launches need not wait for that);
    one that may still run is removed here, so that two never run at once."""
    try:
        container = await docker.containers.create(init_container_body(spec.create, tool), name=f"{spec.name}-init")
    except EngineError as error:
        return f"Docker: {error}"
    ended = False
    try:
        await container.start()
        with anyio.fail_after(INIT_SECONDS):
            code = int((await container.wait()).get("StatusCode", 1))
        ended = True
    except TimeoutError:
        return f"it did not finish within {INIT_SECONDS:g} s"
    except EngineError as error:
        return f"Docker: {error}"
    finally:
        if ended:
            removals.push_async_callback(_remove, container)
        else:
            await _remove(container)
    return None if code == 0 else f"{' '.join(INIT_COMMANDS[tool])} exited with code {code}"


async def _remove(container: Container) -> None:
    """Shielded from cancellation, bounded in time; one already gone is fine."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(REMOVE_SECONDS):
        with contextlib.suppress(EngineError):
            await container.delete(force=True)
