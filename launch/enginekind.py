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
  bridge (the default network, or the offline one) the gateway address of that network,
  which Podman puts on the host's side of its bridge: Podman 4.3 refuses `host-gateway`
  ("invalid IP address in add-host"; its API writes it into /etc/hosts literally), maps only
  `host.containers.internal` itself, and Podman >= 5 maps `host.docker.internal` too. That
  address is an engine fact (`GET /networks/<NetworkMode>`: for `bridge` Podman's API
  answers with its default network, `podman`), asked once per launch by the supervisor when
  `needs_bridge_host_address` says so, and handed to the plan
  (`LaunchPlan.bridge_host_address`); not known (a `--dry-run`, or a network without a
  gateway): no entry. Rootless Podman's bridge lives in a namespace of its own, where that
  address is not the host's.
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


def needs_bridge_host_address(kind: EngineKind, network_mode: str) -> bool:
    """Whether the entry for an agent on `network_mode` (no gateway) is the network's gateway
    address, which only the engine knows (Podman on a bridge: see the module)."""
    return kind is EngineKind.PODMAN and network_mode != "host"


def host_alias_entries(kind: EngineKind, network_mode: str, bridge_host_address: str | None = None
                       ) -> list[str]:
    """`HostConfig.ExtraHosts` for an agent on `network_mode` (no gateway): see the module.
    `bridge_host_address`: the engine's gateway address of that network (None: not asked)."""
    if kind is EngineKind.DOCKER_DESKTOP:
        return []
    if network_mode == "host":
        return [f"{HOST_ALIAS}:{LOOPBACK}"]
    if needs_bridge_host_address(kind, network_mode):
        return [f"{HOST_ALIAS}:{bridge_host_address}"] if bridge_host_address else []
    return [f"{HOST_ALIAS}:{HOST_GATEWAY}"]
