"""From a parsed request to the plan of a launch, refusing bad input first.

This is the whole planning stage in order: load the config, guard the folders
(`launch.project`), gather the host facts, then decide once what every slot shares — the
project's mounts, the image, the network mode and policy, the published ports, the limits,
the builder-api endpoint — and which slots run with which fresh session. It raises
`ConfigError` (or `PathRefused`, a `ConfigError`) before anything has been written or
Docker contacted.

The plan holds no container specs: a slot's spec depends on the session the slot store
resolves and on the SSH port the supervisor finds free, so `launch.spec.container_spec`
builds it exactly once, when those are known (`slot_specs` builds them all with the
fresh sessions, for `--dry-run`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from launch import ssh
from launch.argv import LaunchRequest
from launch.config import Config
from launch.enginekind import EngineKind
from launch.errors import ConfigError
from launch.guards import check_docker_dir
from launch.hostfacts import HostFacts, gather_host_facts
from launch.identity import project_identity, project_state_home
from launch.layout import Layout, default_layout
from launch.limits import host_limits
from launch.mounts import ProjectLayout, project_layout
from launch.network import NetworkPolicy
from launch.project import locate_project
from launch.session import SessionChoice, session_from_request
from launch.spec import ContainerSpec, PublishedPorts, container_spec, network_mode, network_policy, published_ports
from launch.surface import Protection, plan_protection


@dataclasses.dataclass(frozen=True)
class BuilderApiEndpoint:
    """The project's builder-api as this launch uses it, loaded ONCE (by the cli, through
    `builder_api.config.load`): the port and password the container is given are those of
    the very config the supervisor's builder-api task serves."""

    port: int
    password: str
    #: What the builder-api's loader returned (`builder_api.config.ProjectConfig`): planning
    #: does not look inside (the layers below builder-api cannot know its type); the
    #: supervisor's task serves it.
    config: object = None
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class BuilderApiUnavailable:
    """The launch asked for the builder-api but its config cannot be loaded: the launch goes
    on without it, and the supervisor says `reason`."""

    reason: str


BuilderApi = BuilderApiEndpoint | BuilderApiUnavailable
#: Loads a project's builder-api config by project name (injected by the cli layer).
BuilderApiResolver = Callable[[str], BuilderApi]


@dataclasses.dataclass(frozen=True)
class SlotPlan:
    """One container of the launch: its slot number (None: an untagged single launch) and
    the fresh session it gets unless the slot store resolves another one."""

    slot: int | None
    session: SessionChoice


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    request: LaunchRequest
    config: Config
    facts: HostFacts
    #: The project's root, token, workdir and folder mounts.
    project: ProjectLayout
    #: How the project's host-executed surface is protected (pins + tripwire).
    protection: Protection
    #: `$LLM_DOCKER_HOME/projects/<key>`: this project's own agent state.
    project_home: Path
    #: The agent image every slot runs.
    image: str
    #: The agents' `HostConfig.NetworkMode` (before a gateway's namespace replaces it).
    network_mode: str
    #: Every slot's network policy; `policy.host_network` (NETWORK_MODE=host): no gateway.
    policy: NetworkPolicy
    #: The container ports published on 127.0.0.1 (SSH's host port is chosen per slot).
    ports: PublishedPorts
    #: MEMORY/CPU/PIDS limits as HostConfig fields.
    limits: Mapping[str, Any]
    #: One per container, in window order.
    slots: tuple[SlotPlan, ...]
    warnings: tuple[str, ...] = ()
    #: Where the windows of a supervised launch go; None for a single interactive launch.
    layout: Layout | None = None
    #: The builder-api when the launch uses it (-a/-ab/autostart), else None.
    builder_api: BuilderApi | None = None
    #: Which engine runs the containers (`launch.enginekind`): learned once the supervisor
    #: has connected (`dataclasses.replace`); a plan made without the engine assumes Docker Engine.
    engine_kind: EngineKind = EngineKind.DOCKER_ENGINE
    #: The engine's gateway address of the agents' network (`NetworkMode`), where Podman's
    #: `host.docker.internal` must point (`launch.enginekind.needs_bridge_host_address`):
    #: learned by the supervisor like `engine_kind`; None when not asked.
    bridge_host_address: str | None = None

    @property
    def gateway(self) -> bool:
        """Whether every slot gets a network gateway (not with NETWORK_MODE=host)."""
        return not self.policy.host_network

    @property
    def builder_api_endpoint(self) -> BuilderApiEndpoint | None:
        return self.builder_api if isinstance(self.builder_api, BuilderApiEndpoint) else None


def wants_builder_api(request: LaunchRequest, config: Config) -> bool:
    """-a, -ab, or BUILDER_API_AUTOSTART (unless -a false)."""
    wanted = request.api if request.api is not None else config.builder_api_autostart
    return bool(wanted or request.api_background)


def plan_launch(request: LaunchRequest, *, environ: Mapping[str, str], cwd: Path, user_home: Path,
                builder_api: BuilderApiResolver | None = None) -> LaunchPlan:
    """Plan every container of a launch (one, or one per window/slot). `builder_api` loads
    the project's builder-api config when the launch uses it (None: it is unavailable)."""
    location = locate_project(request.directory, environ=environ, cwd=cwd, user_home=user_home)
    config = location.loaded.config
    docker_dir = check_docker_dir(config.docker_dir)
    identity = location.identity
    layout = project_layout(location.launch_dir, location.workspace, docker_dir, identity)
    facts = gather_host_facts(location.launch_dir, root=identity.root, user_home=user_home,
                              state_home=location.state_home, workspace=location.workspace,
                              toplevel=location.git_toplevel, environ=environ)
    api: BuilderApi | None = None
    if wants_builder_api(request, config):
        api = (builder_api(identity.root.name) if builder_api is not None
               else BuilderApiUnavailable("no builder-api loader was given"))
    return plan_from_facts(request, config, facts, layout=layout, warnings=location.loaded.warnings, builder_api=api)


def plan_from_facts(request: LaunchRequest, config: Config, facts: HostFacts, *, layout: ProjectLayout | None = None,
                    warnings: tuple[str, ...] = (), builder_api: BuilderApi | None = None) -> LaunchPlan:
    """The pure part of planning: everything the slots share, decided once from the facts
    (tests build the facts by hand). `layout` is the project's, when the caller already has it."""
    if layout is None:
        identity = project_identity(facts.launch_dir, facts.workspace, facts.git_toplevel)
        layout = project_layout(facts.launch_dir, facts.workspace, check_docker_dir(config.docker_dir), identity)
    if isinstance(builder_api, BuilderApiEndpoint) and builder_api.password:
        # The server checks the TOML's password; a different BUILDER_API_PASSWORD in .env
        # must not be what the container gets.
        config = dataclasses.replace(config, builder_api_password=builder_api.password)
    slots: tuple[SlotPlan, ...]
    if not request.supervised:
        slots = (SlotPlan(request.slot, session_from_request(request, facts.new_session_id)),)
    else:
        # Each window is its own slot, with its own freshly minted session id.
        slots = tuple(SlotPlan(slot, session_from_request(request, str(uuid.uuid4())))
                      for slot in request.window_slots())
    if config.llm_docker_ssh_enabled:
        for planned in slots:  # a slot whose own SSH port cannot exist is a config error, now
            try:
                ssh.candidate_ports(config.llm_docker_ssh_host_port, planned.slot)
            except ssh.SshPortError as error:
                raise ConfigError(str(error)) from None
    ports = published_ports(request, config)
    endpoint = builder_api if isinstance(builder_api, BuilderApiEndpoint) else None
    layout_of_windows = None
    if request.supervised:
        layout_of_windows = request.layout or default_layout(
            platform=facts.platform, tmux_available=facts.tmux_available, terminal=facts.stdin_tty)
    return LaunchPlan(
        request=request, config=config, facts=facts, project=layout,
        protection=plan_protection(facts.surface, commit=config.agent_git_commit),
        project_home=project_state_home(facts.state_home, layout.root),
        image=config.image_for(request.tool),
        network_mode=network_mode(config, ports),
        policy=network_policy(request, config, facts, ports, endpoint.port if endpoint is not None else None),
        ports=ports,
        limits=host_limits(config.memory_limit, config.cpu_limit, config.pids_limit,
                           host_memory=facts.host_memory, host_cpus=facts.host_cpus),
        slots=slots, warnings=warnings, layout=layout_of_windows, builder_api=builder_api,
    )


def slot_specs(plan: LaunchPlan) -> tuple[ContainerSpec, ...]:
    """Every slot's spec with its fresh session and its own SSH port: what `--dry-run` prints
    (the supervisor builds each one itself, once the slot's session and port are known)."""
    return tuple(container_spec(plan, slot) for slot in plan.slots)
