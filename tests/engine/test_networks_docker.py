"""`Networks.gateway_address` against the real Docker engine of this machine: the address the
engine itself reports for a bridge, None for a network without one, the engine's 404 for a
missing one. (Against Podman: `tests/supervisor/test_podman_host_alias_docker.py`.)"""

from __future__ import annotations

import uuid

import aiodocker
import pytest

from engine.client import EngineError, connect

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_bridges_gateway_is_the_engines_own_answer(docker: aiodocker.Docker) -> None:
    bridge = await (await docker.networks.get("bridge")).show()
    async with await connect() as engine:
        address = await engine.networks.gateway_address("bridge")
        assert address == bridge["IPAM"]["Config"][0]["Gateway"]
        assert await engine.networks.gateway_address("none") is None  # no IPAM config at all
        with pytest.raises(EngineError) as missing:
            await engine.networks.gateway_address(f"llm-docker-test-missing-{uuid.uuid4().hex[:8]}")
        assert missing.value.status == 404
