"""`host.docker.internal` in a Podman cage on a bridge (no gateway): the network's gateway
address, learned from the engine, names the host — against the private rootful Podman
service of `testbed.podman`, exactly as `test_podman_docker.py` points a launch at it.

Podman 4.3 refuses `host-gateway`, so without the address the name does not resolve at all;
with it, a listener of the test on the host (0.0.0.0, its own port) is reached, from the
default bridge (the Engine API, as the spec creates an agent) and from a real `cld` launch
on the offline network (NETWORK_MODE=host with INTERNET_ACCESS=false: a bridge of its own).
What the tests compare with is Podman's own view (its command line), never the adapter's.

Needs the Docker engine (the test image comes from it) and Podman (`apt-get install podman
catatonit`); absent either, the tests fail, never skip.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import aiodocker
import anyio
import pytest

from engine.client import connect
from engine.kind import EngineKind, identify
from launch.enginekind import host_alias_entries
from launch.spec import OFFLINE_NETWORK
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_LABEL
from testbed.podman import PodmanService, podman_service
from testbed.processes import field
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


@pytest.fixture(scope="module")
def podman(docker_engine_ready: None) -> Iterator[PodmanService]:
    """One private Podman service for the module, with the busybox test image (no gateway
    image: these agents run without a gateway)."""
    with podman_service(BUSYBOX_IMAGE) as service:
        yield service


class Listener:
    """One TCP connection accepted on every address of the host; what it sent and from where."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.peer = ""
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.server.settimeout(120)
        try:
            connection, peer = self.server.accept()
        except TimeoutError:
            return
        with connection:
            connection.settimeout(30)
            self.peer = peer[0]
            self.received = connection.recv(100)

    def close(self) -> tuple[str, str]:
        """(what arrived, the peer's address)."""
        self.thread.join(timeout=120)
        self.server.close()
        return self.received.decode(), self.peer


def podman_subnet(podman: PodmanService, network: str) -> dict[str, Any]:
    """Podman's own view of a network's first subnet (`subnet`, `gateway`)."""
    subnet: dict[str, Any] = json.loads(podman.podman("network", "inspect", network).stdout)[0]["subnets"][0]
    return subnet


def script(port: int) -> str:
    return f"grep host.docker.internal /etc/hosts; echo from-the-cage | nc -w 5 host.docker.internal {port}"


def test_on_podmans_default_bridge_the_entry_is_its_gateway(podman: PodmanService,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
    listener = Listener()

    async def main() -> tuple[EngineKind, str | None, int, str]:
        async with await connect() as engine:
            kind = (await identify(engine)).kind
            address = await engine.networks.gateway_address("bridge")  # what the supervisor asks
        body = {"Image": BUSYBOX_IMAGE, "Cmd": ["sh", "-c", script(listener.port)],
                "Labels": {TEST_LABEL: "test_podman_host_alias_docker"},
                "HostConfig": {"NetworkMode": "bridge", "ExtraHosts": host_alias_entries(kind, "bridge", address)}}
        async with aiodocker.Docker(url=podman.docker_host) as docker:
            container = await docker.containers.create(body, name=f"llm-docker-test-alias-{uuid.uuid4().hex[:8]}")
            try:
                await container.start()
                code = (await container.wait(timeout=60))["StatusCode"]
                return kind, address, code, "".join(await container.log(stdout=True, stderr=True))
            finally:
                await container.delete(force=True)

    kind, address, code, output = anyio.run(main, backend="asyncio")
    received, peer = listener.close()
    default = podman_subnet(podman, "podman")  # Podman's API answers for `bridge` with it
    assert kind is EngineKind.PODMAN
    assert address == default["gateway"]
    assert f"{address}\thost.docker.internal" in output, output
    assert received == "from-the-cage\n" and code == 0, output
    assert ipaddress.ip_address(peer) in ipaddress.ip_network(default["subnet"])  # through the bridge


def test_a_launch_on_podmans_offline_network_reaches_the_host(podman: PodmanService, user: User) -> None:
    """The launcher learns the offline network's gateway and the agent's spec names it: the
    hostile agent (the fake agent's `--fake-sh`) reaches the test's listener as
    host.docker.internal."""
    listener = Listener()
    result = user.run("cld", "--", "-p", "hi", "--fake-sh", script(listener.port), cwd=user.project(),
                      DOCKER_HOST=podman.docker_host, NETWORK_MODE="host", INTERNET_ACCESS="false")
    received, peer = listener.close()
    assert result.returncode == 0, result.stderr
    offline = podman_subnet(podman, OFFLINE_NETWORK)  # made by the launch, on Podman
    assert f"{offline['gateway']}\thost.docker.internal" in result.stdout, result.stdout
    assert field(result.stdout, "SH") == ["0"], result.stdout
    assert received == "from-the-cage\n"
    assert ipaddress.ip_address(peer) in ipaddress.ip_network(offline["subnet"])
    assert podman.names() == []
