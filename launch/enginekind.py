"""The engine that runs a launch's containers, as a planning fact — and what it means for
the one name a container uses to reach the host, `host.docker.internal`.

The kind is learned from the engine (`engine.kind.identify`) once the supervisor has
connected, and put into the plan (`LaunchPlan.engine_kind`); planning before that
(`--dry-run`) assumes a Docker Engine. Defined here, in the bottom layer, so the pure
planners can decide by it; `engine.kind` re-exports it.

`host.docker.internal` per kind, for an agent that does NOT join a gateway (with a gateway
the gateway's own entry, an address inside its namespace, is the agent's — the same for
every kind, `launch.network.gateway_create`):

* Docker Engine (and a remote one): with host networking the container shares the host's
  loopback, so `127.0.0.1`; on a bridge `host-gateway`, the engine's address of the host.
* Docker Desktop: no entry. Its VM's loopback is not the host's, and Desktop resolves
  `host.docker.internal` to the host itself in every network mode.
* Podman (4.3 checked): with host networking `127.0.0.1`, as for Docker Engine. On a
  bridge no entry: Podman 4.3 refuses `host-gateway` ("invalid IP address in add-host")
  and maps `host.containers.internal` to the host itself; Podman >= 5 maps
  `host.docker.internal` too.
"""

from __future__ import annotations

from enum import StrEnum

HOST_ALIAS = "host.docker.internal"
LOOPBACK = "127.0.0.1"
HOST_GATEWAY = "host-gateway"


class EngineKind(StrEnum):
    """The engine behind the endpoint, as far as a launch must care."""

    DOCKER_ENGINE = "docker-engine"
    DOCKER_DESKTOP = "docker-desktop"
    PODMAN = "podman"
    REMOTE = "remote"


def host_alias_entries(kind: EngineKind, network_mode: str) -> list[str]:
    """`HostConfig.ExtraHosts` for an agent on `network_mode` (no gateway): see the module."""
    if kind is EngineKind.DOCKER_DESKTOP:
        return []
    if network_mode == "host":
        return [f"{HOST_ALIAS}:{LOOPBACK}"]
    if kind is EngineKind.PODMAN:
        return []
    return [f"{HOST_ALIAS}:{HOST_GATEWAY}"]
