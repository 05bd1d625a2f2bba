"""The container spec: (launch plan, slot) -> the body of `POST /containers/create`.

A pure function, so `--dry-run` can print exactly what a launch would create and tests
can check every property of it without Docker. What every slot shares (image, network
mode and policy, published ports, limits) is decided once by `launch.plan` with the
helpers here; `container_spec` adds what is the slot's own (name, session, SSH port), and
the supervisor calls it once per slot, after the slot's session is resolved. The executor
only adds effects: creating the persistence folders, creating and starting the container.

Security properties encoded here:

* the tool runs in the foreground under Docker's init (`Init: true`);
* sandbox on: every capability dropped, only what an enabled feature needs added back,
  `no-new-privileges`, a PID limit; never the Docker socket;
* an explicit environment allow-list (`launch.environment`);
* the project's host-executed surface pinned read-only over itself (`launch.surface`);
* the tool's state folders are the project's own (`identity.project_state_home`);
* on Linux the agent runs as the invoking user, so files it creates belong to the user
  and it can edit the user's files with no capabilities at all;
* published ports bind to 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch import ssh as ssh_plan
from launch.argv import LaunchRequest, TmuxMode
from launch.command import CODEMAN_PORT, boot_prompt_for, container_command, tool_command
from launch.config import Config
from launch.enginekind import host_alias_entries
from launch.environment import container_environment
from launch.errors import ConfigError
from launch.hostfacts import HostFacts
from launch.identity import project_state_key
from launch.liveness import identity_labels
from launch.mounts import (
    CONTAINER_HOME,
    EVENTS_FILE,
    OPENCODE_SHARED_CONFIG,
    RUN_TARGET,
    SHARED_CONFIG,
    Mount,
    ProjectLayout,
    dotfile_mounts,
    persistence_mounts,
    protection_mounts,
    run_folder,
    shared_config_mounts,
)
from launch.network import GatewaySpec, NetworkPolicy, gateway_slot_key, join_gateway, plan_gateway, plan_policy
from launch.secrets import SECRETS_ENV, SECRETS_FILE, split_secrets
from launch.session import SessionChoice
from launch.surface import Protection
from launch.tools import Tool

if TYPE_CHECKING:
    from launch.plan import LaunchPlan, SlotPlan

HOSTNAME = "llm-docker"
LABEL_PREFIX = "io.llm-docker."
MASK = "***"
OFFLINE_NETWORK = "llm-docker-offline"
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    name: str
    create: dict[str, Any]
    layout: ProjectLayout
    mounts: tuple[Mount, ...]
    session: SessionChoice
    #: How this launch protects the project's host-executed surface (pins + tripwire).
    protection: Protection
    #: `$LLM_DOCKER_HOME/projects/<key>`: this project's own agent state.
    project_home: Path

    #: Secret variables (provider keys, passwords): never in `create` (and so never in
    #: `docker inspect`); the supervisor writes them to the run folder's secrets file.
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The slot's network gateway (`launch.network`); None with NETWORK_MODE=host.
    gateway: GatewaySpec | None = None

    def as_json_object(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """What `--dry-run` prints: the secrets masked unless `--show-secrets`."""
        shown: dict[str, Any] = {"name": self.name, "create": self.create}
        if self.secrets:
            shown["secrets"] = {key: value if show_secrets else MASK for key, value in sorted(self.secrets.items())}
        return shown


#: Docker's own read-only /proc paths (setting the list replaces them, so they are repeated),
#: plus the image's guard-rails: even root in the container, or a launch with
#: SANDBOX_ENABLED=false, cannot change Claude Code's managed settings or llm-docker's files
#: (a read-only mount needs CAP_SYS_ADMIN to undo). Paths missing from the image are skipped.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                  "/etc/claude-code", "/opt/llm-docker", "/usr/local/bin/llm-docker-entrypoint",
                  "/usr/local/bin/llm-docker-session-event", "/usr/local/bin/llm-docker-tmux",
                  "/usr/local/bin/builder-api")


UPSTREAM_PROJECT_LABEL = "llm-docker-project"


@dataclasses.dataclass(frozen=True)
class PublishedPorts:
    """The container ports a launch publishes on the host's 127.0.0.1 — the same for every
    slot; only SSH's host port differs per slot (chosen by the supervisor)."""

    #: sshd's container port when it is published (None: SSH off, or on the host's network).
    ssh: int | None = None
    #: Codeman's dashboard (`-tc`), published at the same port on the host.
    codeman: int | None = None

    @property
    def container_ports(self) -> tuple[int, ...]:
        return tuple(port for port in (self.ssh, self.codeman) if port is not None)

    def bindings(self, ssh_host_port: int | None) -> dict[int, int]:
        """Container port -> host port for one slot."""
        ports: dict[int, int] = {}
        if self.ssh is not None and ssh_host_port is not None:
            ports[self.ssh] = ssh_host_port
        if self.codeman is not None:
            ports[self.codeman] = self.codeman
        return ports


def published_ports(request: LaunchRequest, config: Config) -> PublishedPorts:
    """SSH: published by whatever owns the network namespace (the gateway, or the bridge);
    not with the host's network, where sshd listens on the host port itself."""
    ssh = config.llm_docker_ssh_port if config.llm_docker_ssh_enabled and not _ssh_on_host_network(request, config) \
        else None
    return PublishedPorts(ssh=ssh, codeman=CODEMAN_PORT if request.tmux is TmuxMode.CODEMAN else None)


def network_mode(config: Config, ports: PublishedPorts) -> str:
    """Host networking when the internet is allowed and nothing is published (as upstream);
    bridge when ports are published; a network with no route out when offline."""
    if not config.internet_access:
        return OFFLINE_NETWORK
    return "bridge" if ports.container_ports else "host"


def network_policy(request: LaunchRequest, config: Config, facts: HostFacts, ports: PublishedPorts,
                   builder_api_port: int | None) -> NetworkPolicy:
    """What every slot's cage may reach (`launch.network`); `host_network` = no gateway.
    Raises `NetworkSettingError` (a `ConfigError`) for a setting that cannot be enforced."""
    return plan_policy(
        network_mode=config.network_mode, internet_access=config.internet_access,
        egress_allow=config.egress_allow, lan_access=config.lan_access, host_ports=config.host_ports,
        resolver_hosts=config.resolver_hosts_file, tool=request.tool, environ={**config.extra, **facts.environ},
        builder_api_port=builder_api_port, host_addresses=facts.host_addresses,
        inbound_ports=ports.container_ports, agent_uid=facts.uid)


def default_ssh_host_port(config: Config, slot: int | None) -> int | None:
    """The slot's own SSH port on the host's loopback, base + slot - 1 as upstream (None: SSH
    off); a port that cannot exist is a `ConfigError`. The supervisor may move to a free one."""
    if not config.llm_docker_ssh_enabled:
        return None
    try:
        return ssh_plan.candidate_ports(config.llm_docker_ssh_host_port, slot).start
    except ssh_plan.SshPortError as error:
        raise ConfigError(str(error)) from None


def container_spec(plan: LaunchPlan, slot: SlotPlan, *, session: SessionChoice | None = None,
                   ssh_host_port: int | None = None) -> ContainerSpec:
    """Build the create body for one slot's container, from what the plan decided once for
    the whole launch.

    `session` is the slot store's choice (default: the slot's fresh session from the plan,
    as `--dry-run` shows it); `ssh_host_port` the free port the supervisor chose for the
    slot's SSH (`supervisor.ssh_ports`; default: the slot's own, `default_ssh_host_port`).
    The supervisor calls this once per slot, after both are known.
    """
    request, config, facts, layout = plan.request, plan.config, plan.facts, plan.project
    tool = request.tool
    mounts = (
        layout.mounts
        + protection_mounts(layout, plan.protection)
        + persistence_mounts(tool, facts.state_home, plan.project_home, ssh=config.llm_docker_ssh_enabled)
        + shared_config_mounts(tool, facts.state_home, facts.shared_config)
        + dotfile_mounts(facts.user_home, facts.dotfiles)
    )
    session = session or slot.session
    danger = config.danger_mode if request.danger is None else request.danger
    tool_argv = tool_command(request, session, danger=danger,
                             boot_prompt=boot_prompt_for(facts.boot_prompt, facts.has_claude_md))
    ssh_port = ssh_host_port if ssh_host_port is not None else default_ssh_host_port(config, slot.slot)
    ports = plan.ports.bindings(ssh_port)
    name = slot_container_name(plan, slot.slot)
    mounts += (Mount(run_folder(facts.state_home, name), RUN_TARGET),)
    labels = _labels(plan, slot.slot, ssh_port)
    own_env = {
        "HOME": CONTAINER_HOME,
        "TOOL": tool.value,
        "LLM_DOCKER_TOOL": tool.value,
        "LLM_DOCKER_PROJECT": layout.token,
        "LLM_DOCKER_LAUNCH_ID": facts.launch_id,
        "LLM_DOCKER_EVENTS": posixpath.join(RUN_TARGET, EVENTS_FILE),
        "LLM_DOCKER_IMAGE": plan.image,
        **({"LLM_DOCKER_SLOT": str(slot.slot)} if slot.slot is not None else {}),
        **_ssh_environment(request, config, facts, ssh_port),
    }
    if any(SHARED_CONFIG[tool][relative] == OPENCODE_SHARED_CONFIG for relative in facts.shared_config
           if relative in SHARED_CONFIG[tool]):
        own_env["OPENCODE_CONFIG"] = OPENCODE_SHARED_CONFIG
    endpoint = plan.builder_api_endpoint
    if endpoint is not None:
        # The agent's `builder-api` client must reach the port this project's API really uses.
        own_env["BUILDER_API_PORT"] = str(endpoint.port)
        if endpoint.password and not config.builder_api_password:
            own_env["BUILDER_API_PASSWORD"] = endpoint.password
    env, secrets = split_secrets(container_environment(config, facts.environ, own_env))
    if secrets:
        env[SECRETS_ENV] = posixpath.join(RUN_TARGET, SECRETS_FILE)
    host_config: dict[str, Any] = {
        "Init": True,
        "Mounts": [_engine_mount(m) for m in mounts],
        "NetworkMode": plan.network_mode,
        # per engine (launch.enginekind)
        "ExtraHosts": host_alias_entries(plan.engine_kind, plan.network_mode, plan.bridge_host_address),
        **plan.limits,
        "ReadonlyPaths": list(READONLY_PATHS),
        "AutoRemove": False,
        **_privileges(config),
    }
    if ports:
        host_config["PortBindings"] = {
            f"{container}/tcp": [{"HostIp": LOOPBACK, "HostPort": str(host)}]
            for container, host in ports.items()
        }
    body: dict[str, Any] = {
        "Image": plan.image,
        "Cmd": container_command(request, tool_argv),
        "Hostname": HOSTNAME,
        "WorkingDir": layout.workdir,
        "User": f"{facts.uid}:{facts.gid}",
        "Env": [f"{key}={value}" for key, value in sorted(env.items())],
        "Labels": labels,
        # Supervised slots are attached to later, from windows: they always get a TTY, and
        # stdin stays open when an attached window detaches.
        "Tty": facts.stdin_tty or request.supervised,
        "OpenStdin": True,
        "StdinOnce": not request.supervised,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host_config,
    }
    if ports:
        body["ExposedPorts"] = {f"{container}/tcp": {} for container in ports}
    gateway = _gateway(plan, slot.slot, name, labels, ports)
    if gateway is not None:
        join_gateway(body, gateway.name)
    return ContainerSpec(name=name, create=body, layout=layout, mounts=mounts, session=session,
                         protection=plan.protection, project_home=plan.project_home, secrets=secrets,
                         gateway=gateway)


def slot_gateway(plan: LaunchPlan, slot: int | None, *, ssh_host_port: int | None = None) -> GatewaySpec | None:
    """One slot's gateway exactly as its `container_spec` will plan it — without building the
    agent's spec (its session is not known yet): what the launch starts early
    (`supervisor.gateway`). None with NETWORK_MODE=host."""
    if plan.policy.host_network:
        return None
    ssh_port = ssh_host_port if ssh_host_port is not None else default_ssh_host_port(plan.config, slot)
    name = slot_container_name(plan, slot)
    return _gateway(plan, slot, name, _labels(plan, slot, ssh_port), plan.ports.bindings(ssh_port))


def _labels(plan: LaunchPlan, slot: int | None, ssh_port: int | None) -> dict[str, str]:
    facts, token = plan.facts, plan.project.token
    labels = {
        LABEL_PREFIX + "tool": plan.request.tool.value,
        LABEL_PREFIX + "project": token,
        LABEL_PREFIX + "project-root": str(plan.project.root),
        LABEL_PREFIX + "slot": "" if slot is None else str(slot),
        LABEL_PREFIX + "launcher-pid": str(facts.launcher_pid),
        LABEL_PREFIX + "launcher-start": facts.launcher_start,
        LABEL_PREFIX + "launch-id": facts.launch_id,
        # where the launcher runs, so gc on a shared engine never mistakes "not visible from
        # here" for "dead" (launch.liveness)
        **{LABEL_PREFIX + key: value for key, value in identity_labels(facts.here).items()},
        # upstream's label: what builder-api's `{{container}}` and existing tooling look up
        UPSTREAM_PROJECT_LABEL: token,
    }
    if ssh_port is not None:
        # `llm-docker status`, `ssh` and `ssh-config` find the slot's SSH here
        labels[LABEL_PREFIX + ssh_plan.LABEL_PORT] = str(ssh_port)
        labels[LABEL_PREFIX + ssh_plan.LABEL_USER] = ssh_plan.login_name(facts.environ, facts.uid)
    return labels


def _gateway(plan: LaunchPlan, slot: int | None, name: str, labels: dict[str, str],
             ports: dict[int, int]) -> GatewaySpec | None:
    """The slot's gateway that enforces the launch's policy (`launch.network`), kept for
    the slot's next launch (`GATEWAY_KEEP_SECONDS`) where the engine shares a unix socket
    in a bind mount with the host (Linux; not through a desktop VM's file sharing)."""
    if plan.policy.host_network:
        return None
    # the launcher's identity (gc, recovery), not the slot's: what lists a project's agents
    # by label (status, tests, builder-api's `{{container}}`) never sees the gateway
    gateway_labels = {key: value for key, value in labels.items()
                      if key not in (LABEL_PREFIX + "tool", LABEL_PREFIX + "project", LABEL_PREFIX + "project-root",
                                     UPSTREAM_PROJECT_LABEL)}
    facts = plan.facts
    return plan_gateway(plan.policy, agent_name=name, agent_user=f"{facts.uid}:{facts.gid}", labels=gateway_labels,
                        label_prefix=LABEL_PREFIX, hostname=HOSTNAME, image=plan.config.gateway_image_tag,
                        published=ports, loopback=LOOPBACK, state_home=facts.state_home,
                        keep_seconds=_keep_seconds(plan), slot_key=slot_gateway_key(plan, slot) or "")


def _keep_seconds(plan: LaunchPlan) -> int:
    """GATEWAY_KEEP_SECONDS where a kept gateway's lease socket (a unix socket in a bind
    mount) is the host's own: Linux (a desktop VM's file sharing does not carry sockets)."""
    return plan.config.gateway_keep_seconds if plan.facts.platform.startswith("linux") else 0


def slot_gateway_key(plan: LaunchPlan, slot: int | None) -> str | None:
    """The label a kept gateway of `slot` carries (None: this launch keeps none)."""
    if plan.policy.host_network or _keep_seconds(plan) <= 0:
        return None
    return gateway_slot_key(plan.facts.uid, plan.request.tool, project_state_key(plan.project.root), slot)


def slot_container_name(plan: LaunchPlan, slot: int | None) -> str:
    """The agent container's name of `slot` in this launch (what the gateway, the SSH port
    and the spec are keyed by)."""
    return container_name(plan.request.tool, plan.project.token, slot, plan.facts.launch_id)


def container_name(tool: Tool, token: str, slot: int | None, launch_id: str) -> str:
    """`llm-docker-<tool>-<token>[-s<slot>]-<short random>`: unique, readable, and never a
    recycled PID (upstream's `claude-$$` collided with orphans)."""
    slot_part = f"-s{slot}" if slot is not None else ""
    return f"llm-docker-{tool.value}-{token}{slot_part}-{launch_id[:8]}"


def _ssh_on_host_network(request: LaunchRequest, config: Config) -> bool:
    """NETWORK_MODE=host keeps the host's network for SSH too: nothing is published (that
    would need a bridge), sshd listens on the host's 127.0.0.1:<host port> itself."""
    return config.network_mode == "host" and config.internet_access and request.tmux is not TmuxMode.CODEMAN


def _ssh_environment(request: LaunchRequest, config: Config, facts: HostFacts, host_port: int | None) -> dict[str, str]:
    """What the image's sshd hook reads (`entrypoint.d/50-sshd`): where to listen, whom to
    let in."""
    if host_port is None:
        return {}
    listen = (f"{LOOPBACK}:{host_port}" if _ssh_on_host_network(request, config)
              else f"0.0.0.0:{config.llm_docker_ssh_port}")
    return {"LLM_DOCKER_SSH_LISTEN": listen, "LLM_DOCKER_SSH_USER": ssh_plan.login_name(facts.environ, facts.uid)}


def _privileges(config: Config) -> dict[str, Any]:
    if not config.sandbox_enabled:
        # Debugging mode: Docker's default capability set plus ptrace for gdb/strace.
        return {"CapAdd": ["SYS_PTRACE"]}
    needed = []
    # sshd runs as the container's own user (no privilege separation): no SETUID, SETGID or
    # SYS_CHROOT; a container port below 1024 is the only thing it could need.
    if config.llm_docker_ssh_enabled and config.llm_docker_ssh_port < 1024:
        needed.append("NET_BIND_SERVICE")
    return {"CapDrop": ["ALL"], "CapAdd": needed, "SecurityOpt": ["no-new-privileges:true"]}


def _engine_mount(mount: Mount) -> dict[str, Any]:
    return {"Type": "bind", "Source": str(mount.source), "Target": mount.target,
            "ReadOnly": mount.read_only}
