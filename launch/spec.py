"""The container spec: (request, config, host facts) -> the body of `POST /containers/create`.

A pure function, so `--dry-run` can print exactly what a launch would create and tests
can check every property of it without Docker. The executor (the supervisor) only adds
effects: creating the persistence folders, creating and starting the container.

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
from typing import Any

from launch import ssh as ssh_plan
from launch.argv import LaunchRequest, TmuxMode
from launch.command import (
    CODEMAN_PORT,
    SessionChoice,
    boot_prompt_for,
    container_command,
    session_from_request,
    tool_command,
)
from launch.config import Config
from launch.environment import container_environment
from launch.guards import check_docker_dir
from launch.hostfacts import HostFacts
from launch.identity import (
    CONTAINER_HOME,
    EVENTS_FILE,
    OPENCODE_SHARED_CONFIG,
    RUN_TARGET,
    SHARED_CONFIG,
    Mount,
    ProjectLayout,
    dotfile_mounts,
    persistence_mounts,
    project_layout,
    project_state_home,
    protection_mounts,
    run_folder,
    shared_config_mounts,
)
from launch.limits import host_limits
from launch.liveness import identity_labels
from launch.network import GatewaySpec, join_gateway, plan_gateway, plan_policy
from launch.secrets import SECRETS_ENV, SECRETS_FILE, split_secrets
from launch.surface import Protection, plan_protection
from launch.tools import Tool

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


def container_spec(request: LaunchRequest, config: Config, facts: HostFacts, *,
                   slot: int | None = None, session: SessionChoice | None = None,
                   ssh_host_port: int | None = None) -> ContainerSpec:
    """Build the create body for one container of this launch.

    `slot` overrides the request's slot (the multi-window fan-out gives each container
    its own); `session` overrides the session the request asks for (the slot store's
    choice); `ssh_host_port` is the free port the supervisor chose for the slot's SSH
    (`supervisor.ssh_ports`; default: the slot's own, `launch.ssh.slot_port`). The folders
    in `facts` must already have passed the path guards.
    """
    tool = request.tool
    slot = request.slot if slot is None else slot
    docker_dir = check_docker_dir(config.docker_dir)
    layout = project_layout(facts.launch_dir, facts.workspace, docker_dir, facts.git_toplevel)
    protection = plan_protection(facts.surface, commit=config.agent_git_commit)
    project_home = project_state_home(facts.state_home, layout.root)
    mounts = (
        layout.mounts
        + protection_mounts(layout, protection)
        + persistence_mounts(tool, facts.state_home, project_home, ssh=config.llm_docker_ssh_enabled)
        + shared_config_mounts(tool, facts.state_home, facts.shared_config)
        + dotfile_mounts(facts.user_home, facts.dotfiles)
    )
    session = session or session_from_request(request, facts.new_session_id)
    danger = config.danger_mode if request.danger is None else request.danger
    tool_argv = tool_command(request, session, danger=danger,
                             boot_prompt=boot_prompt_for(facts.boot_prompt, facts.has_claude_md))
    ssh_port = _ssh_host_port(config, slot, ssh_host_port)
    ports = _published_ports(request, config, slot, ssh_port)
    name = container_name(tool, layout.token, slot, facts.launch_id)
    mounts += (Mount(run_folder(facts.state_home, name), RUN_TARGET),)
    labels = {
        LABEL_PREFIX + "tool": tool.value,
        LABEL_PREFIX + "project": layout.token,
        LABEL_PREFIX + "project-root": str(layout.root),
        LABEL_PREFIX + "slot": "" if slot is None else str(slot),
        LABEL_PREFIX + "launcher-pid": str(facts.launcher_pid),
        LABEL_PREFIX + "launcher-start": facts.launcher_start,
        LABEL_PREFIX + "launch-id": facts.launch_id,
        # where the launcher runs, so gc on a shared engine never mistakes "not visible from
        # here" for "dead" (launch.liveness)
        **{LABEL_PREFIX + key: value for key, value in identity_labels(facts.here).items()},
        # upstream's label: what builder-api's `{{container}}` and existing tooling look up
        UPSTREAM_PROJECT_LABEL: layout.token,
    }
    if ssh_port is not None:
        # `llm-docker status`, `ssh` and `ssh-config` find the slot's SSH here
        labels[LABEL_PREFIX + ssh_plan.LABEL_PORT] = str(ssh_port)
        labels[LABEL_PREFIX + ssh_plan.LABEL_USER] = ssh_plan.login_name(facts.environ, facts.uid)
    own_env = {
        "HOME": CONTAINER_HOME,
        "TOOL": tool.value,
        "LLM_DOCKER_TOOL": tool.value,
        "LLM_DOCKER_PROJECT": layout.token,
        "LLM_DOCKER_LAUNCH_ID": facts.launch_id,
        "LLM_DOCKER_EVENTS": posixpath.join(RUN_TARGET, EVENTS_FILE),
        "LLM_DOCKER_IMAGE": config.image_for(tool),
        **({"LLM_DOCKER_SLOT": str(slot)} if slot is not None else {}),
        **_ssh_environment(request, config, facts, ssh_port),
    }
    if any(SHARED_CONFIG[tool][relative] == OPENCODE_SHARED_CONFIG for relative in facts.shared_config
           if relative in SHARED_CONFIG[tool]):
        own_env["OPENCODE_CONFIG"] = OPENCODE_SHARED_CONFIG
    if facts.builder_api is not None:
        # The agent's `builder-api` client must reach the port this project's API really uses.
        own_env["BUILDER_API_PORT"] = str(facts.builder_api[0])
        if facts.builder_api[1] and not config.builder_api_password:
            own_env["BUILDER_API_PASSWORD"] = facts.builder_api[1]
    env, secrets = split_secrets(container_environment(config, facts.environ, own_env))
    if secrets:
        env[SECRETS_ENV] = posixpath.join(RUN_TARGET, SECRETS_FILE)
    network_mode = _network_mode(config, ports)
    host_config: dict[str, Any] = {
        "Init": True,
        "Mounts": [_engine_mount(m) for m in mounts],
        "NetworkMode": network_mode,
        "ExtraHosts": [f"host.docker.internal:{LOOPBACK if network_mode == 'host' else 'host-gateway'}"],
        **host_limits(config.memory_limit, config.cpu_limit, config.pids_limit,
                      host_memory=facts.host_memory, host_cpus=facts.host_cpus),
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
        "Image": config.image_for(tool),
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
    gateway = _gateway(request, config, facts, name, labels, ports)
    if gateway is not None:
        join_gateway(body, gateway.name)
    return ContainerSpec(name=name, create=body, layout=layout, mounts=mounts, session=session,
                         protection=protection, project_home=project_home, secrets=secrets, gateway=gateway)


def _gateway(request: LaunchRequest, config: Config, facts: HostFacts, name: str, labels: dict[str, str],
             ports: dict[int, int]) -> GatewaySpec | None:
    """The slot's network policy and the gateway that enforces it (`launch.network`)."""
    policy = plan_policy(
        network_mode=config.network_mode, internet_access=config.internet_access,
        egress_allow=config.egress_allow, lan_access=config.lan_access, host_ports=config.host_ports,
        resolver_hosts=config.resolver_hosts_file, tool=request.tool, environ={**config.extra, **facts.environ},
        builder_api_port=facts.builder_api[0] if facts.builder_api is not None else None,
        host_addresses=facts.host_addresses, inbound_ports=ports, agent_uid=facts.uid)
    if policy.host_network:
        return None
    # the launcher's identity (gc, recovery), not the slot's: what lists a project's agents
    # by label (status, tests, builder-api's `{{container}}`) never sees the gateway
    gateway_labels = {key: value for key, value in labels.items()
                      if key not in (LABEL_PREFIX + "tool", LABEL_PREFIX + "project", LABEL_PREFIX + "project-root",
                                     UPSTREAM_PROJECT_LABEL)}
    return plan_gateway(policy, agent_name=name, agent_user=f"{facts.uid}:{facts.gid}", labels=gateway_labels,
                        label_prefix=LABEL_PREFIX, hostname=HOSTNAME, image=config.gateway_image_tag,
                        published=ports, loopback=LOOPBACK, state_home=facts.state_home)


def container_name(tool: Tool, token: str, slot: int | None, launch_id: str) -> str:
    """`llm-docker-<tool>-<token>[-s<slot>]-<short random>`: unique, readable, and never a
    recycled PID (upstream's `claude-$$` collided with orphans)."""
    slot_part = f"-s{slot}" if slot is not None else ""
    return f"llm-docker-{tool.value}-{token}{slot_part}-{launch_id[:8]}"


def _ssh_host_port(config: Config, slot: int | None, chosen: int | None) -> int | None:
    """The slot's SSH port on the host's loopback (None: SSH off): the supervisor's choice,
    else base + slot - 1, as upstream."""
    if not config.llm_docker_ssh_enabled:
        return None
    if chosen is not None:
        return chosen
    try:
        return ssh_plan.candidate_ports(config.llm_docker_ssh_host_port, slot).start
    except ssh_plan.SshPortError as error:
        raise ValueError(str(error)) from None


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


def _published_ports(request: LaunchRequest, config: Config, slot: int | None,
                     ssh_host_port: int | None = None) -> dict[int, int]:
    """Container port -> host port. SSH: the slot's port (see `_ssh_host_port`), published by
    whatever owns the network namespace (the gateway, or the bridge); not with the host's
    network, where sshd listens on the host port itself."""
    ports: dict[int, int] = {}
    if ssh_host_port is None:
        ssh_host_port = _ssh_host_port(config, slot, None)
    if ssh_host_port is not None and not _ssh_on_host_network(request, config):
        ports[config.llm_docker_ssh_port] = ssh_host_port
    if request.tmux is TmuxMode.CODEMAN:
        ports[CODEMAN_PORT] = CODEMAN_PORT
    return ports


def _network_mode(config: Config, ports: dict[int, int]) -> str:
    """Host networking when the internet is allowed and nothing is published (as upstream);
    bridge when ports are published; a network with no route out when offline."""
    if not config.internet_access:
        return OFFLINE_NETWORK
    return "bridge" if ports else "host"


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
