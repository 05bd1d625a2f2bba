"""Images: inspect, history, pull, build, delete.

Builds always run the legacy builder of `POST /build` with the context sent as it is
(an uncompressed tar), intermediate containers removed even on failure: that is what
every build of llm-docker wants, so it is not a parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import IO, Any

import aiodocker

from engine.errors import EngineError, translated


class Images:
    """The engine's images (`Engine.images`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    async def inspect(self, reference: str) -> dict[str, Any]:
        """`docker image inspect`; a missing image is `EngineError` with status 404."""
        with translated():
            return await self._docker.images.inspect(reference)

    async def find(self, reference: str) -> dict[str, Any] | None:
        """Like `inspect`, but None when the engine has no such image (any other refusal
        still raises)."""
        try:
            return await self.inspect(reference)
        except EngineError as error:
            if error.status == 404:
                return None
            raise

    async def history(self, reference: str) -> list[dict[str, Any]]:
        """`docker history`: the image's layers, newest first (`CreatedBy`, `Size`, ...)."""
        with translated():
            layers: Any = await self._docker.images.history(reference)
        return [dict(layer) for layer in layers]

    async def pull(self, reference: str) -> AsyncIterator[dict[str, Any]]:
        """Pull `reference`, yielding the engine's progress events; a failure the engine
        reports inside the stream raises `EngineError` (status 0)."""
        with translated():
            async for event in self._docker.images.pull(reference, stream=True):
                yield event

    async def build(self, *, context: IO[bytes], tag: str, labels: Mapping[str, str],
                    buildargs: Mapping[str, str] | None = None, nocache: bool = False,
                    ) -> AsyncIterator[dict[str, Any]]:
        """Build the tar `context` as `tag`, yielding the builder's events (`stream`: output,
        `aux`: the image id); a failing step raises `EngineError` (status 0) with its message."""
        with translated():
            async for event in self._docker.images.build(
                    fileobj=context, tag=tag, buildargs=buildargs, nocache=nocache, labels=labels, stream=True,
                    rm=True, forcerm=True, encoding="identity"):
                yield event

    async def delete(self, reference: str) -> None:
        """Remove the image (never forced: one a container still uses stays, with 409)."""
        with translated():
            await self._docker.images.delete(reference, force=False)

