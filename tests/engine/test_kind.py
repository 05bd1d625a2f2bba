"""`kind_from`: which engine answers, from its own `/info` and `/version` and the endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from engine.kind import EngineKind, is_remote_endpoint, kind_from

DOCKER_VERSION: dict[str, Any] = {"Version": "20.10.24", "Components": [{"Name": "Engine", "Version": "20.10.24"}]}
PODMAN_VERSION: dict[str, Any] = {"Version": "4.3.1", "Components": [
    {"Name": "Podman Engine", "Version": "4.3.1"}, {"Name": "Conmon", "Version": "2.1.6"}]}
LINUX_INFO: dict[str, Any] = {"OperatingSystem": "Debian GNU/Linux 12 (bookworm)"}
DESKTOP_INFO: dict[str, Any] = {"OperatingSystem": "Docker Desktop"}


@pytest.mark.parametrize(("info", "version", "docker_host", "kind"), [
    (LINUX_INFO, DOCKER_VERSION, None, EngineKind.DOCKER_ENGINE),
    (LINUX_INFO, DOCKER_VERSION, "unix:///var/run/docker.sock", EngineKind.DOCKER_ENGINE),
    (DESKTOP_INFO, DOCKER_VERSION, "unix:///Users/me/.docker/run/docker.sock", EngineKind.DOCKER_DESKTOP),
    # Desktop's own answer wins over a tcp endpoint (its "expose on tcp://localhost:2375" option)
    (DESKTOP_INFO, DOCKER_VERSION, "tcp://192.0.2.7:2375", EngineKind.DOCKER_DESKTOP),
    (LINUX_INFO, PODMAN_VERSION, "unix:///run/user/1000/podman/podman.sock", EngineKind.PODMAN),
    (LINUX_INFO, PODMAN_VERSION, "ssh://core@192.0.2.7:22/run/podman/podman.sock", EngineKind.PODMAN),
    (LINUX_INFO, DOCKER_VERSION, "tcp://192.0.2.7:2376", EngineKind.REMOTE),
    (LINUX_INFO, DOCKER_VERSION, "ssh://me@build-box", EngineKind.REMOTE),
    (LINUX_INFO, DOCKER_VERSION, "tcp://127.0.0.1:2375", EngineKind.DOCKER_ENGINE),
    (LINUX_INFO, DOCKER_VERSION, "tcp://localhost:2375", EngineKind.DOCKER_ENGINE),
    (LINUX_INFO, DOCKER_VERSION, "tcp://[::1]:2375", EngineKind.DOCKER_ENGINE),
    (LINUX_INFO, DOCKER_VERSION, "ssh://me@127.0.0.2", EngineKind.DOCKER_ENGINE),
    # answers that are not what they should be never make an engine something it is not
    ({}, {}, None, EngineKind.DOCKER_ENGINE),
    ({"OperatingSystem": None}, {"Components": "Podman Engine"}, None, EngineKind.DOCKER_ENGINE),
    ({"OperatingSystem": "Docker Desktop for fun"}, {"Components": [None, {"Name": 1}]}, None,
     EngineKind.DOCKER_ENGINE),
])
def test_kind_from(info: dict[str, Any], version: dict[str, Any], docker_host: str | None, kind: EngineKind) -> None:
    assert kind_from(info, version, docker_host) is kind


@pytest.mark.parametrize(("endpoint", "remote"), [
    ("unix:///var/run/docker.sock", False),
    ("npipe:////./pipe/docker_engine", False),
    ("fd://", False),
    ("tcp://LOCALHOST:2375", False),
    ("https://127.0.0.1:2376", False),
    ("tcp://10.0.0.5:2375", True),
    ("https://docker.example:2376", True),
    ("ssh://me@[2001:db8::1]:22", True),
    ("tcp://", False),
])
def test_remote_endpoint(endpoint: str, remote: bool) -> None:
    assert is_remote_endpoint(endpoint) is remote


def test_kinds_have_stable_names() -> None:
    """The kind is written into plans and shown to users: its values are an interface."""
    assert [str(kind) for kind in EngineKind] == ["docker-engine", "docker-desktop", "podman", "remote"]
