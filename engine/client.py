"""The connection to the Docker Engine: `Engine` (one aiodocker client and what it
offers: containers, images, networks, events), `connect`, and `run_with_engine`, the way
a command gets a connected engine and a clear failure when there is none.

Every engine failure is an `EngineError` (exit code 125, like `docker run`'s) whose message
is the engine's own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiodocker
import anyio

from engine import events, reach
from engine.containers import Containers
from engine.errors import EngineError, translated
from engine.images import Images
from engine.networks import Networks
from launch.tools import Tool

__all__ = ["Engine", "EngineError", "connect", "require_image", "run_with_engine"]


class Engine:
    """One client of the engine (one connection pool); close it, or use `async with`.

    Making one asks the engine nothing (`connect` does): the launch path creates it while
    the engine is still busy elsewhere. aiodocker runs on asyncio only, so an `Engine` must
    be made and used inside an asyncio event loop. With no endpoint to use (none found, a
    `DOCKER_HOST` without a scheme, a broken Docker context) making one is `EngineError`."""

    def __init__(self) -> None:
        try:
            self._docker = aiodocker.Docker()
        except (AssertionError, ValueError, aiodocker.DockerError) as error:
            raise EngineError(reach.no_endpoint_message(reach.resolve(), str(error))) from None
        self.containers = Containers(self._docker)
        self.images = Images(self._docker)
        self.networks = Networks(self._docker)

    async def version(self) -> dict[str, Any]:
        """`docker version`: the engine's answer proves it is there."""
        with translated():
            return await self._docker.version()

    async def info(self) -> dict[str, Any]:
        """`docker info`: what the engine runs on (`OperatingSystem` names Docker Desktop)."""
        with translated():
            return dict(await self._docker.system.info())

    @property
    def endpoint(self) -> str:
        """Where this client connects (`unix:///var/run/docker.sock`, `tcp://…`, `ssh://…`), as
        aiodocker resolved it: the Docker context, else `DOCKER_HOST`, else the first socket found."""
        return str(self._docker._connection_info)

    def events(self, filters: Mapping[str, Sequence[str]]) -> contextlib.AbstractAsyncContextManager[
            events.EventStream]:
        """The event stream, filtered (see `engine.events.watch`)."""
        return events.watch(self._docker, filters)

    async def close(self) -> None:
        await self._docker.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()


async def connect() -> Engine:
    """An engine that answered `GET /version`; else `EngineError`, one line naming the
    endpoint, where it came from and what to do (see `engine.reach`)."""
    engine = Engine()
    try:
        await engine.version()
    except Exception as error:  # noqa: BLE001 - any failure to reach the engine means the same
        await engine.close()
        raise EngineError(reach.unreachable_message(reach.resolve(), engine.endpoint, error)) from None
    return engine


def run_with_engine(body: Callable[[Engine], Awaitable[int]], *, prefix: str = "llm-docker") -> int:
    """Run `body` with a connected engine in a fresh event loop (asyncio, as aiodocker
    needs); an unreachable engine, or one that refuses a request of `body`, is one line on
    stderr and exit 125. The engine is always closed."""
    async def main() -> int:
        try:
            engine = await connect()
        except EngineError as error:
            print(f"{prefix}: {error}", file=sys.stderr)
            return error.exit_code
        try:
            return await body(engine)
        except EngineError as error:
            print(f"{prefix}: {error}", file=sys.stderr)
            return error.exit_code
        finally:
            await engine.close()

    return anyio.run(main, backend="asyncio")


async def require_image(engine: Engine, image: str, tool: Tool) -> None:
    """The custom `LLM_DOCKER_IMAGE` must exist: llm-docker cannot build an image it did not define."""
    if await engine.images.find(image) is None:
        raise EngineError(
            f"image {image} (LLM_DOCKER_IMAGE) not found — build or load it, or unset LLM_DOCKER_IMAGE "
            f"so that {tool.launcher} builds and runs llm-docker's own image", status=404)
