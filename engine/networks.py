"""Networks: the one llm-docker needs is made on demand (`ensure`); a network's gateway
address is what Podman's `host.docker.internal` must name (`gateway_address`)."""

from __future__ import annotations

import ipaddress

import aiodocker

from engine.errors import EngineError, translated

#: The label every network llm-docker creates carries (its own name as the value).
LABEL_NETWORK = "io.llm-docker.network"


class Networks:
    """The engine's networks (`Engine.networks`)."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    async def ensure(self, name: str, *, internal: bool) -> None:
        """Create the named bridge network if it is missing (`internal` = no route out).
        A parallel launch creating it at the same moment (409) is fine."""
        try:
            with translated():
                await self._docker.networks.get(name)
            return
        except EngineError as error:
            if error.status != 404:
                raise
        try:
            with translated():
                await self._docker.networks.create({"Name": name, "Driver": "bridge", "Internal": internal,
                                                    "Labels": {LABEL_NETWORK: name}})
        except EngineError as error:
            if error.status != 409:  # created meanwhile by a parallel launch
                raise

    async def gateway_address(self, name: str) -> str | None:
        """The gateway of the network `name` (`GET /networks/<name>`, `IPAM.Config[].Gateway`,
        an IPv4 one first): the host's address on that bridge. A config with a subnet but no
        gateway — Docker's default bridge when docker0 existed before the daemon started —
        has the subnet's first address, the one the engine gives the bridge. None when it
        has none; a missing network is the engine's `EngineError` (404)."""
        with translated():
            network = await (await self._docker.networks.get(name)).show()
        ipam = network.get("IPAM")
        configs = ipam.get("Config") if isinstance(ipam, dict) else None
        found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for config in configs if isinstance(configs, list) else []:
            if not isinstance(config, dict):
                continue
            gateway, subnet = config.get("Gateway"), config.get("Subnet")
            try:
                if isinstance(gateway, str) and gateway:
                    found.append(ipaddress.ip_address(gateway))
                elif isinstance(subnet, str) and subnet:
                    found.append(ipaddress.ip_address(str(next(ipaddress.ip_network(subnet, strict=False).hosts()))))
            except (ValueError, StopIteration):
                continue
        return str(min(found, key=lambda address: address.version)) if found else None
