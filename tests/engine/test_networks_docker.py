"""`Networks.gateway_address` against the real Docker engine of this machine: the address the
engine itself reports for a bridge, None for a network without one, the engine's 404 for a
missing one. (Against Podman: `tests/supervisor/test_podman_host_alias_docker.py`.)"""

from __future__ import annotations

import uuid

import aiodocker
import pytest

from engine.client import EngineError, connect
from tests.launch.test_host_alias_docker import run_busybox

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _default_route(docker: aiodocker.Docker, network: str) -> str:
    """The default gateway a container on `network` is given: what the engine really routes through."""
    _, output = await run_busybox(docker, {"NetworkMode": network}, "ip route")
    return output.split("default via ", 1)[1].split()[0]


async def test_the_bridges_gateway_is_the_engines_own_answer(docker: aiodocker.Docker) -> None:
    """Whether the engine's IPAM config names the gateway or only the subnet (Docker's default
    bridge when docker0 existed before the daemon started), the answer is the route its
    containers get."""
    async with await connect() as engine:
        address = await engine.networks.gateway_address("bridge")
        assert address == await _default_route(docker, "bridge")
        assert await engine.networks.gateway_address("none") is None  # no IPAM config at all
        with pytest.raises(EngineError) as missing:
            await engine.networks.gateway_address(f"llm-docker-test-missing-{uuid.uuid4().hex[:8]}")
        assert missing.value.status == 404
