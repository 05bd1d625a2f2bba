"""`identify` against the real engine of this machine: a Docker Engine on Linux."""

from __future__ import annotations

import os

import anyio
import pytest

from engine.client import connect
from engine.kind import EngineKind, identify

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


def test_identify_the_engine_here() -> None:
    async def main() -> None:
        async with await connect() as engine:
            identity = await identify(engine)
            version = await engine.version()
        assert identity.kind is EngineKind.DOCKER_ENGINE
        assert identity.version == version["Version"] != ""
        assert identity.operating_system not in ("", "Docker Desktop")
        assert identity.endpoint == (os.environ.get("DOCKER_HOST") or identity.endpoint)
        assert identity.endpoint.startswith(("unix://", "tcp://", "ssh://"))

    anyio.run(main, backend="asyncio")
