"""`host.docker.internal` on the real engine of this machine (a Docker Engine on Linux):
the entry the spec writes for its kind reaches a listener on the host, with host
networking and on the default bridge."""

from __future__ import annotations

import socket
import threading
import uuid

import aiodocker
import pytest

from engine.client import connect
from engine.kind import EngineKind, identify
from launch.enginekind import host_alias_entries
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_LABEL

pytestmark = [pytest.mark.anyio, pytest.mark.docker]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Listener:
    """One TCP connection accepted on the host; what it sent."""

    def __init__(self, address: str) -> None:
        self.server = socket.create_server((address, 0))
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.server.settimeout(60)
        try:
            connection, _ = self.server.accept()
        except TimeoutError:
            return
        with connection:
            connection.settimeout(30)
            self.received = connection.recv(100)

    def close(self) -> str:
        self.thread.join(timeout=60)
        self.server.close()
        return self.received.decode()


async def run_busybox(docker: aiodocker.Docker, host_config: dict, script: str) -> tuple[int, str]:
    body = {"Image": BUSYBOX_IMAGE, "Cmd": ["sh", "-c", script], "HostConfig": host_config,
            "Labels": {TEST_LABEL: "test_host_alias_docker"}}
    container = await docker.containers.create(config=body, name=f"llm-docker-test-alias-{uuid.uuid4().hex[:8]}")
    try:
        await container.start()
        result = await container.wait(timeout=60)
        return result["StatusCode"], "".join(await container.log(stdout=True, stderr=True))
    finally:
        await container.delete(force=True)


@pytest.mark.parametrize(("network_mode", "listen_on"), [("host", "127.0.0.1"), ("bridge", "gateway")])
async def test_the_entry_for_this_engine_reaches_the_host(docker: aiodocker.Docker, network_mode: str,
                                                          listen_on: str) -> None:
    async with await connect() as engine:
        kind = (await identify(engine)).kind
    assert kind is EngineKind.DOCKER_ENGINE
    if listen_on == "gateway":  # what `host-gateway` names: the default bridge's gateway on the host
        async with await connect() as engine:
            found = await engine.networks.gateway_address("bridge")
        assert found is not None
        listen_on = found
    listener = Listener(listen_on)
    entries = host_alias_entries(kind, network_mode)
    code, output = await run_busybox(
        docker, {"NetworkMode": network_mode, "ExtraHosts": entries},
        f"grep host.docker.internal /etc/hosts; echo from-the-cage | nc -w 5 host.docker.internal {listener.port}")
    assert listener.close() == "from-the-cage\n", output
    assert code == 0 and f"{listen_on}\thost.docker.internal" in output, output


async def test_without_an_entry_this_engine_does_not_know_the_name(docker: aiodocker.Docker) -> None:
    """Docker Desktop's rule (no entry) relies on Desktop's own DNS: a plain Docker Engine
    has none, so the rule must never be applied to it — the kind decides."""
    code, output = await run_busybox(docker, {"NetworkMode": "bridge",
                                              "ExtraHosts": host_alias_entries(EngineKind.DOCKER_DESKTOP, "bridge")},
                                      "nslookup host.docker.internal || echo unknown; grep -c docker.internal "
                                      "/etc/hosts")
    assert "unknown" in output and output.strip().endswith("0"), output
