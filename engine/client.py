"""The Docker Engine API through aiodocker: connecting, images, and clear failures.

Every engine failure becomes an `EngineError` whose message is the engine's own, and whose
exit code is 125, like `docker run`'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable

import aiodocker
import anyio

from launch.tools import Tool

EXIT_ENGINE = 125


class EngineError(Exception):
    """The engine is unreachable or refused a request; `str()` is one line for the user."""

    exit_code = EXIT_ENGINE


def engine_message(error: aiodocker.DockerError) -> str:
    message = error.message if isinstance(error.message, str) else str(error.message)
    return message.strip() or f"HTTP {error.status}"


async def connect() -> aiodocker.Docker:
    """A client whose engine answered `GET /version`."""
    docker = aiodocker.Docker()
    try:
        await docker.version()
    except Exception as error:  # noqa: BLE001 - any failure to reach the engine means the same
        await docker.close()
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineError(
            f"cannot reach the Docker engine at {where} ({error}) — start it, e.g. "
            "`sudo systemctl start docker` (or run scripts/ensure-docker-engine)"
        ) from None
    return docker


def run_with_engine(body: Callable[[aiodocker.Docker], Awaitable[int]], *, prefix: str = "llm-docker") -> int:
    """Run `body` with a connected client in a fresh event loop (asyncio, as aiodocker needs);
    an unreachable engine is one line on stderr and exit 125. The client is always closed."""
    async def main() -> int:
        try:
            docker = await connect()
        except EngineError as error:
            print(f"{prefix}: {error}", file=sys.stderr)
            return error.exit_code
        try:
            return await body(docker)
        finally:
            await docker.close()

    return anyio.run(main, backend="asyncio")


async def require_image(docker: aiodocker.Docker, image: str, tool: Tool) -> None:
    """The custom `LLM_DOCKER_IMAGE` must exist: llm-docker cannot build an image it did not define."""
    try:
        await docker.images.inspect(image)
    except aiodocker.DockerError as error:
        if error.status == 404:
            raise EngineError(
                f"image {image} (LLM_DOCKER_IMAGE) not found — build or load it, or unset LLM_DOCKER_IMAGE "
                f"so that {tool.launcher} builds and runs llm-docker's own image"
            ) from None
        raise EngineError(engine_message(error)) from None


async def ensure_network(docker: aiodocker.Docker, name: str, *, internal: bool) -> None:
    """Create the named bridge network if it is missing (`internal` = no route out)."""
    try:
        await docker.networks.get(name)
    except aiodocker.DockerError as error:
        if error.status != 404:
            raise EngineError(engine_message(error)) from None
        try:
            await docker.networks.create({"Name": name, "Driver": "bridge", "Internal": internal,
                                          "Labels": {"io.llm-docker.network": name}})
        except aiodocker.DockerError as error:
            if error.status != 409:  # created meanwhile by a parallel launch
                raise EngineError(engine_message(error)) from None
