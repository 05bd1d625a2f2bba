"""Which engine answers: Docker Engine, Docker Desktop, Podman, or an engine on another machine.

The kind decides facts a launch depends on that the Engine API does not state directly:
what `host.docker.internal` means inside a container, whether the host's loopback is the
engine's loopback, whether bind-mounted paths are this machine's paths. `kind_from` is pure
(the engine's `/info` and `/version` answers and the endpoint in, the kind out) so every
branch is tested without the engines themselves; `identify` asks the connected engine once.
`EngineKind` itself is defined in `launch.enginekind` (the planners decide by it) and
re-exported here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from launch.enginekind import EngineKind

if TYPE_CHECKING:
    from engine.client import Engine

__all__ = ["EngineIdentity", "EngineKind", "identify", "is_remote_endpoint", "kind_from"]

PODMAN_COMPONENT = "Podman Engine"
DESKTOP_OPERATING_SYSTEM = "Docker Desktop"
REMOTE_SCHEMES = frozenset({"tcp", "ssh", "http", "https"})
LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True)
class EngineIdentity:
    """What `identify` learned: the kind, the server's version, its `OperatingSystem`, and the
    endpoint the client talks to."""

    kind: EngineKind
    version: str
    operating_system: str
    endpoint: str


def kind_from(info: Mapping[str, Any], version: Mapping[str, Any], docker_host: str | None) -> EngineKind:
    """The engine's kind from its own answers (`GET /info`, `GET /version`) and the endpoint.

    The engine's answers win over the endpoint: Podman names itself in `/version`'s
    `Components` ("Podman Engine") wherever it runs, Docker Desktop in `/info`'s
    `OperatingSystem` (its VM reports "Docker Desktop"). Otherwise a `tcp://`/`ssh://`
    endpoint that is not this machine's loopback is a remote engine (its paths and loopback
    are not ours); anything else is a Docker Engine here."""
    components = version.get("Components")
    if isinstance(components, list) and any(
            isinstance(component, Mapping) and component.get("Name") == PODMAN_COMPONENT for component in components):
        return EngineKind.PODMAN
    operating_system = info.get("OperatingSystem")
    if isinstance(operating_system, str) and operating_system.strip() == DESKTOP_OPERATING_SYSTEM:
        return EngineKind.DOCKER_DESKTOP
    if docker_host is not None and is_remote_endpoint(docker_host):
        return EngineKind.REMOTE
    return EngineKind.DOCKER_ENGINE


def is_remote_endpoint(docker_host: str) -> bool:
    """A `tcp://`, `ssh://` (or `http(s)://`) endpoint whose host is not a loopback name or
    address. Unix sockets and named pipes are always this machine's. Pure: no name is
    resolved, so a remote name that happens to point here still counts as remote (the safe
    side: remote only ever turns host-specific shortcuts off)."""
    parts = urlsplit(docker_host.strip())
    if parts.scheme.lower() not in REMOTE_SCHEMES:
        return False
    host = (parts.hostname or "").lower()
    if not host or host in LOCAL_HOST_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


async def identify(engine: Engine) -> EngineIdentity:
    """Ask the connected engine who it is: `/info` and `/version`, once each (~5 ms each
    here). One after the other, so a refusal leaves as the `EngineError` itself, never
    wrapped in a task group's exception group."""
    info = await engine.info()
    version = await engine.version()
    endpoint = engine.endpoint
    operating_system = info.get("OperatingSystem")
    server_version = version.get("Version")
    return EngineIdentity(
        kind=kind_from(info, version, endpoint),
        version=server_version if isinstance(server_version, str) else "",
        operating_system=operating_system if isinstance(operating_system, str) else "",
        endpoint=endpoint,
    )
