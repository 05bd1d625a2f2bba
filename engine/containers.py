"""Containers: create, find and list them, and a typed handle for one container.

`Container` is a handle by id or name: making one asks the engine nothing. A container
that came from `Containers.list` also carries what the engine said about it in the list
(names, labels, creation time), so callers that only filter or sort never pay one
inspect per container.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer

from engine.errors import EngineError, translated
from engine.streams import AttachStream

#: Podman's refusal of `Init: true` without its init binary (catatonit), and what to do.
NO_INIT = "container-init binary not found"
INIT_REMEDY = "on Podman install catatonit (Debian/Ubuntu: `apt-get install catatonit`)"


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """What a finished `docker exec` left: its exit code (None if the engine did not say)
    and its stdout and stderr, interleaved as they came."""

    exit_code: int | None
    output: bytes


class Container:
    """One container of the engine, by id or name."""

    def __init__(self, raw: DockerContainer, summary: Mapping[str, Any] | None = None) -> None:
        self._raw = raw
        self._summary: Mapping[str, Any] = summary or {}

    def __repr__(self) -> str:
        return f"Container({self.id!r})"

    @property
    def id(self) -> str:
        """The id it was listed or created with (or the name it was looked up by)."""
        return self._raw.id

    # -- from the list summary (empty for a handle made by id or name) ----------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Its names as listed, without the engine's leading "/"."""
        return tuple(str(name).lstrip("/") for name in self._summary.get("Names") or ())

    @property
    def name(self) -> str:
        """Its first listed name, else its id."""
        return next(iter(self.names), self.id)

    @property
    def labels(self) -> dict[str, str]:
        """Its labels as listed."""
        return dict(self._summary.get("Labels") or {})

    @property
    def summary(self) -> Mapping[str, Any]:
        """The engine's list entry (state, image id, mounts...); empty for a handle made by id or name."""
        return self._summary

    @property
    def created(self) -> int:
        """When it was created (Unix seconds), as listed; 0 when unknown."""
        return int(self._summary.get("Created", 0) or 0)

    # -- requests --------------------------------------------------------------------------

    async def show(self) -> dict[str, Any]:
        """`docker inspect`: the engine's full, current view of the container."""
        with translated():
            return await self._raw.show()

    async def start(self) -> None:
        with translated():
            await self._raw.start()

    async def stop(self, *, grace_seconds: int) -> None:
        """SIGTERM (or its stop signal), then SIGKILL after `grace_seconds`."""
        with translated():
            await self._raw.stop(t=grace_seconds)

    async def kill(self, *, signal: str) -> None:
        """Send `signal` (a name like "SIGINT") to its main process."""
        with translated():
            await self._raw.kill(signal=signal)

    async def wait(self, *, condition: str | None = None) -> dict[str, Any]:
        """Until it stops (or reaches `condition`, e.g. "removed"); no time limit of its own."""
        with translated():
            if condition is None:
                return await self._raw.wait(timeout=None)
            return await self._raw.wait(timeout=None, condition=condition)

    async def delete(self, *, force: bool = False) -> None:
        """Remove it (`force`: kill it first if it runs)."""
        with translated():
            await self._raw.delete(force=force)

    async def rename(self, name: str) -> None:
        """Give it a new name (the engine's rename is atomic: a taken name is a 409)."""
        with translated():
            await self._raw.rename(name)

    async def resize(self, *, rows: int, columns: int) -> None:
        """Set the size of its TTY."""
        with translated():
            await self._raw.resize(h=rows, w=columns)

    def attach(self, *, stdin: bool = False, stdout: bool = False, stderr: bool = False, logs: bool = False,
               detach_keys: str | None = None) -> AttachStream:
        """Its attach connection (open it with `async with`); attached before `start`, no
        output is lost."""
        return AttachStream(self._raw.attach(stdin=stdin, stdout=stdout, stderr=stderr, logs=logs,
                                             detach_keys=detach_keys))

    async def exec_run(self, argv: Sequence[str], *, user: str) -> ExecResult:
        """Run `argv` inside it as `user` (unprivileged) to its end; its exit code and output."""
        output = bytearray()
        with translated():
            execution = await self._raw.exec(list(argv), stdout=True, stderr=True, user=user, privileged=False)
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    output += message.data
            code = (await execution.inspect()).get("ExitCode")
        return ExecResult(exit_code=code if isinstance(code, int) else None, output=bytes(output))

    async def stats(self) -> dict[str, Any]:
        """One sample of its resource usage (`docker stats --no-stream`)."""
        with translated():
            return (await self._raw.stats(stream=False))[0]


class Containers:
    """The engine's containers (`Engine.containers`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    def get(self, id_or_name: str) -> Container:
        """A handle for an existing container; asks the engine nothing (a missing one
        fails with status 404 at its first request)."""
        return Container(self._docker.containers.container(id_or_name))

    async def create(self, config: Mapping[str, Any], *, name: str) -> Container:
        """`POST /containers/create` with the Engine API body `config`; not started."""
        try:
            with translated():
                return Container(await self._docker.containers.create(config=dict(config), name=name))
        except EngineError as error:
            if NO_INIT in str(error):  # the one line says what to install, not only what is missing
                raise EngineError(f"{error} — the engine has no init process for `Init: true`: "
                                  f"{INIT_REMEDY}", status=error.status) from None
            raise

    async def list(self, *, filters: Mapping[str, Sequence[str]], all: bool = False) -> builtins.list[Container]:
        """The containers matching `filters` (e.g. {"label": [...], "status": ["running"]});
        `all`: stopped and created ones too. Each carries its list summary."""
        params: dict[str, Any] = {"filters": {key: list(values) for key, values in filters.items()}}
        if all:
            params["all"] = True
        with translated():
            found = await self._docker.containers.list(**params)
        return [Container(raw, _list_summary(raw)) for raw in found]


def _list_summary(raw: DockerContainer) -> Mapping[str, Any]:
    """What `GET /containers/json` said about `raw`. aiodocker keeps it only in the private
    `DockerContainer._container` (it has no public accessor for list data); read here, once,
    so that nothing else depends on it."""
    return raw._container
