"""`host.docker.internal` per engine kind (`launch.enginekind`), as the spec writes it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from launch.argv import LaunchRequest, parse_argv
from launch.config import Config
from launch.enginekind import EngineKind, host_alias_entries, needs_bridge_host_address
from launch.network import HOST_ADDRESS
from launch.spec import OFFLINE_NETWORK, container_spec
from launch.tools import Tool
from testbed.plans import plan_of

HOST = Config(network_mode="host", llm_docker_ssh_enabled=False)


def body(line: str, config: Config, kind: EngineKind | None, bridge_host_address: str | None = None) -> dict:
    request = parse_argv(Tool.CLAUDE, line.split(), cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    assert isinstance(request, LaunchRequest)
    plan = plan_of(request, config)
    if kind is not None:  # as the supervisor does once connected
        plan = dataclasses.replace(plan, engine_kind=kind, bridge_host_address=bridge_host_address)
    return container_spec(plan, plan.slots[0]).create


@pytest.mark.parametrize(("kind", "on_host", "on_bridge"), [
    (None, ["host.docker.internal:127.0.0.1"], ["host.docker.internal:host-gateway"]),  # no engine asked yet
    (EngineKind.DOCKER_ENGINE, ["host.docker.internal:127.0.0.1"], ["host.docker.internal:host-gateway"]),
    (EngineKind.REMOTE, ["host.docker.internal:127.0.0.1"], ["host.docker.internal:host-gateway"]),
    (EngineKind.DOCKER_DESKTOP, [], []),  # the VM's loopback is not the host's; Desktop's DNS knows the name
    (EngineKind.PODMAN, ["host.docker.internal:127.0.0.1"], []),  # 4.3 refuses host-gateway; no address asked
])
def test_agent_without_gateway(kind: EngineKind | None, on_host: list[str], on_bridge: list[str]) -> None:
    host = body("", HOST, kind)["HostConfig"]
    assert host["NetworkMode"] == "host" and host["ExtraHosts"] == on_host
    bridge = body("-tc", HOST, kind)["HostConfig"]  # Codeman publishes a port: a bridge
    assert bridge["NetworkMode"] == "bridge" and bridge["ExtraHosts"] == on_bridge
    offline = body("", dataclasses.replace(HOST, internet_access=False), kind)["HostConfig"]
    assert offline["NetworkMode"] == OFFLINE_NETWORK and offline["ExtraHosts"] == on_bridge


@pytest.mark.parametrize("kind", list(EngineKind))
def test_the_networks_gateway_address_is_podmans_entry_on_a_bridge(kind: EngineKind) -> None:
    """What the supervisor learned from the engine (`GET /networks/<NetworkMode>`) is the
    entry on Podman's bridges; every other kind keeps its own rule, whatever was learned."""
    without = {"host": body("", HOST, kind)["HostConfig"]["ExtraHosts"],
               "bridge": body("-tc", HOST, kind)["HostConfig"]["ExtraHosts"]}
    host = body("", HOST, kind, "10.88.0.1")["HostConfig"]
    bridge = body("-tc", HOST, kind, "10.88.0.1")["HostConfig"]
    offline = body("", dataclasses.replace(HOST, internet_access=False), kind, "10.89.0.1")["HostConfig"]
    assert host["ExtraHosts"] == without["host"]  # the host's loopback, never the bridge's address
    if kind is EngineKind.PODMAN:
        assert bridge["ExtraHosts"] == ["host.docker.internal:10.88.0.1"]
        assert offline["ExtraHosts"] == ["host.docker.internal:10.89.0.1"]
    else:
        assert bridge["ExtraHosts"] == offline["ExtraHosts"] == without["bridge"]


@pytest.mark.parametrize("kind", list(EngineKind))
def test_with_a_gateway_the_name_is_the_gateways_for_every_engine(kind: EngineKind) -> None:
    """The agent joins its gateway's namespace: no entry of its own; the gateway's entry is
    an address inside that namespace, whatever engine runs it."""
    request = parse_argv(Tool.CLAUDE, [], cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    assert isinstance(request, LaunchRequest)
    plan = dataclasses.replace(plan_of(request, Config()), engine_kind=kind)
    spec = container_spec(plan, plan.slots[0])
    assert "ExtraHosts" not in spec.create["HostConfig"]
    assert spec.gateway is not None
    assert spec.gateway.create["HostConfig"]["ExtraHosts"] == [f"host.docker.internal:{HOST_ADDRESS}"]


def test_rule() -> None:
    assert host_alias_entries(EngineKind.PODMAN, "bridge") == []
    assert host_alias_entries(EngineKind.PODMAN, "bridge", "10.88.0.1") == ["host.docker.internal:10.88.0.1"]
    assert host_alias_entries(EngineKind.PODMAN, "host", "10.88.0.1") == ["host.docker.internal:127.0.0.1"]
    assert [needs_bridge_host_address(kind, mode) for kind in EngineKind for mode in ("host", "bridge")] == [
        False, False, False, False, False, True, False, False]  # Podman on a bridge only
    assert host_alias_entries(EngineKind.DOCKER_DESKTOP, "host") == []
    assert host_alias_entries(EngineKind.DOCKER_ENGINE, "llm-docker-offline") == ["host.docker.internal:host-gateway"]
