"""`llm-docker doctor`: does the configured network policy actually hold on this engine?

The same proof a launch waits for before its agent starts (`supervisor/gateway.py`): a
throw-away gateway with the policy planned from the config (`launch/network.py`) loads its
rules and runs the policy's checks from inside its namespace, as this user's uid with no
capability, and says "verified" — or which check failed. No slot is needed. The gateway is
leased to doctor's attach stream and removed before doctor exits; it carries no launcher
label, so `gc`, recovery and `status` never take it for a slot's.

One gateway per distinct policy: the tools' policies differ only when `EGRESS_ALLOW` names
`@agent` (each tool's provider).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import anyio

from engine.client import Engine
from launch.config import Config
from launch.errors import ConfigError
from launch.hostfacts import host_addresses
from launch.network import GATEWAYS_FOLDER, NetworkPolicy, plan_gateway, plan_policy
from launch.spec import HOSTNAME, LABEL_PREFIX, LOOPBACK
from launch.tools import Tool
from supervisor.doctor.images import GatewayImage, gateway_state
from supervisor.doctor.report import Finding, fail, ok, skip, warn
from supervisor.gateway import GatewayRun

NETWORK = "network"
#: The label of doctor's throw-away gateways (its value: doctor's pid).
LABEL_DOCTOR = LABEL_PREFIX + "doctor"


def policies(config: Config, environ: Mapping[str, str]) -> dict[Tool, NetworkPolicy]:
    """Each tool's policy, as a launch by this user would plan it (`launch.spec.network_policy`)."""
    addresses = host_addresses()
    return {tool: plan_policy(
        network_mode=config.network_mode, internet_access=config.internet_access, egress_allow=config.egress_allow,
        lan_access=config.lan_access, host_ports=config.host_ports, resolver_hosts=config.resolver_hosts_file,
        tool=tool, environ={**config.extra, **environ}, builder_api_port=None, host_addresses=addresses,
        inbound_ports=(config.llm_docker_ssh_port,) if config.llm_docker_ssh_enabled else (),
        agent_uid=os.getuid()) for tool in Tool}


async def network_findings(docker: Engine, config: Config, state_home: Path,
                           environ: Mapping[str, str]) -> list[Finding]:
    if config.network_mode == "host":
        return [warn(NETWORK, "NETWORK_MODE=host: no network policy — the agent shares the host's network, its "
                              "loopback services and abstract sockets", "set NETWORK_MODE=gateway (the default)")]
    try:
        planned = await anyio.to_thread.run_sync(policies, config, environ)
    except ConfigError as error:
        return [fail(NETWORK, f"the network policy cannot be planned: {error}", "correct that setting")]
    gateway = await gateway_state(docker, config)
    if gateway.state in (GatewayImage.MISSING, GatewayImage.OUTDATED):
        return [skip(NETWORK, f"not checked: the gateway image {gateway.tag} is {gateway.state.value} (see images)")]
    distinct: dict[NetworkPolicy, list[Tool]] = {}
    for tool, policy in planned.items():
        distinct.setdefault(policy, []).append(tool)
    found: list[Finding] = []

    async def one(policy: NetworkPolicy, tools: list[Tool]) -> None:
        found.append(await self_test(docker, policy, gateway.tag, state_home,
                                     who="" if len(distinct) == 1 else "/".join(t.value for t in tools) + ": "))

    async with anyio.create_task_group() as group:
        for policy, tools in distinct.items():
            group.start_soon(one, policy, tools)
    return sorted(found, key=lambda finding: finding.message)


async def self_test(docker: Engine, policy: NetworkPolicy, image: str, state_home: Path, *, who: str) -> Finding:
    """Start a throw-away gateway for `policy`, await its verdict, remove it."""
    agent = f"llm-docker-doctor-{os.getpid()}-{secrets.token_hex(4)}"
    spec = plan_gateway(policy, agent_name=agent, agent_user=f"{os.getuid()}:{os.getgid()}",
                        labels={LABEL_DOCTOR: str(os.getpid())}, label_prefix=LABEL_PREFIX, hostname=HOSTNAME,
                        image=image, published={}, loopback=LOOPBACK, state_home=state_home)
    # the HOST_PORTS folder (`$LLM_DOCKER_HOME/gateways/<digest>/`) goes with the gateway; its
    # parents too when this check made them
    made = [folder for folder in (state_home, state_home / GATEWAYS_FOLDER) if not folder.exists()]
    run = GatewayRun(spec)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(run.hold, docker)
            await run.settled.wait()
            run.release(discard=True)  # removed now, and waited for: doctor leaves nothing behind
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # not empty: a launch uses it now
                folder.rmdir()
    if run.error is not None:
        return fail(NETWORK, f"{who}{policy.describe()}: {run.error}",
                    f"a launch refuses to start its agent until it holds: rebuild the gateway image "
                    f"(`llm-docker image build --tool gateway`), check GATEWAY_IMAGE={image} and the network "
                    "settings, then run doctor again")
    return ok(NETWORK, f"{who}{policy.describe()}: holds — a throw-away gateway ({image}) passed its "
                       f"{len(spec.probes)} checks as uid {os.getuid()}")
