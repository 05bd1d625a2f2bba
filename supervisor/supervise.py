"""One supervisor run: every task of `supervisor.tasks` in ONE anyio task group.

Order of events:

1. connect to the engine; make sure the image exists and is current (`image.ensure`:
   build on first run or on --build/--rebuild-force, say when it is stale);
2. open the state store, finish saves left by dead launchers, `--clean` if asked;
3. per slot of the plan: resolve the session from the slot store and the SSH host port,
   then build the slot's spec (once) and create its folders; then take every slot's lease
   and write the journal rows in ONE transaction (a busy slot: one line, exit 2, no
   container created);
4. start the guardian (the SIGKILL lease), then run the tasks until every slot is saved;
5. tell the guardian we are done; the exit code is the tool's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid

import anyio

from engine.client import Engine, EngineError
from engine.desktop import connect_for_launch
from engine.kind import identify
from image.certs import select_extra_certificates
from image.ensure import build_log_path, ensure_image
from image.gateway import ensure_gateway_image
from image.progress import BuildProgress
from launch.enginekind import EngineKind, needs_bridge_host_address
from launch.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, ConfigError, ImageError, LlmDockerError
from launch.liveness import Liveness, journal_start, launcher_from_journal, launcher_liveness
from launch.network import model_endpoint_problem
from launch.plan import LaunchPlan, SlotPlan
from launch.spec import OFFLINE_NETWORK, container_spec, slot_container_name
from launch.ssh import parse_authorized_keys
from launch.state import prepare_for_container
from supervisor import tripwire
from supervisor.context import SlotRun, Supervisor, write_stderr
from supervisor.gateway import GatewayHolders, gateway_holders
from supervisor.guardian import guardian
from supervisor.logconfig import LOG_BUFFER_LINES, configure_logging
from supervisor.printable import printable
from supervisor.recovery import collect_garbage, recover_dead_launches
from supervisor.remove_tree import remove_tree
from supervisor.slots import Notice, busy_message, new_launch, resolve_session
from supervisor.ssh_keys import ensure_install_keys
from supervisor.ssh_ports import choose_host_port, claimed_ports
from supervisor.store import Launch, SlotBusy, SlotMoved, StateStore
from supervisor.tasks import TASKS
from supervisor.terminal import terminal_id
from supervisor.tool_init import initialise_tool_state

#: Tries to take the leases: a dead holder recovered, or a slot saved meanwhile, retries.
LEASE_ATTEMPTS = 5


async def supervise(plan: LaunchPlan, gateways: GatewayHolders | None = None) -> int:
    if gateways is None:  # nobody started the gateways early (`supervisor.launcher` does)
        async with gateway_holders(plan, early=False) as holders:
            return await supervise(plan, holders)
    send, receive = anyio.create_memory_object_stream[str](LOG_BUFFER_LINES)
    log = configure_logging(send, development=plan.config.node_env == "development",
                            launch_id=plan.facts.launch_id, tool=plan.request.tool.value)
    launcher = plan.request.tool.launcher

    def notice(message: str) -> None:
        message = printable(message)
        log.info("notice", message=message)
        write_stderr(f"{launcher}: {message}\n")

    try:
        # the one place a launch reaches the engine: starts Docker Desktop when it is down
        docker = await connect_for_launch(plan.facts.state_home, notice)
    except EngineError as error:
        notice(str(error))
        return error.exit_code
    try:
        plan = dataclasses.replace(plan, engine_kind=(await identify(docker)).kind)
        if plan.engine_kind is EngineKind.PODMAN:
            gateways.confirm_removals()
        gateways.allow_keeping(plan.engine_kind is EngineKind.DOCKER_ENGINE)
        refusal = engine_refusal(plan)
        if refusal is not None:  # before any agent container exists (and before an image build)
            raise refusal
        await ensure_image(docker, plan.config, plan.request.tool, plan.facts.state_home,
                           build=plan.request.build, no_cache=plan.request.rebuild_force, notice=notice)
        if not plan.gateway:
            notice("NETWORK_MODE=host: the agent shares the host's network — no network policy, the host's "
                   "loopback services and abstract sockets are reachable")
        else:
            try:
                await ensure_gateway_image(
                    docker, plan.config, select_extra_certificates(plan.config.extra_ca_certs),
                    image=plan.config.gateway_image_tag, notice=notice,
                    progress=lambda: BuildProgress(sys.stderr, build_log_path(plan.facts.state_home),
                                                   verbose=plan.config.debug))
            except (ImageError, ConfigError) as error:
                notice(f"{error} — no agent was started")
                return error.exit_code
            problem = model_endpoint_problem(plan.policy, {**plan.config.extra, **plan.facts.environ})
            if problem is not None:
                notice(f"warning: {problem}")
        if plan.network_mode == OFFLINE_NETWORK:
            await docker.networks.ensure(OFFLINE_NETWORK, internal=True)
        plan = await with_bridge_host_address(plan, docker, notice)  # (once the network exists)
        ssh_keys = None
        if plan.config.llm_docker_ssh_enabled:
            # before any container: what every slot's sshd trusts, and the pin the probe checks
            try:
                ssh_keys = await anyio.to_thread.run_sync(
                    ensure_install_keys, plan.facts.state_home,
                    parse_authorized_keys(plan.config.llm_docker_ssh_authorized_keys))
            except (OSError, ValueError) as error:
                notice(f"SSH: cannot prepare the install's keys: {error} — set LLM_DOCKER_SSH_ENABLED=false to launch "
                       "without SSH")
                return EXIT_FAILURE
        async with StateStore.open(plan.facts.state_home) as store:
            await recover_dead_launches(store, docker, plan.facts.state_home, notice)
            if plan.request.clean:
                removed = await collect_garbage(store, docker, plan.facts.state_home, notice)
                notice(f"--clean: removed {removed} container(s) of dead launchers; live sessions untouched")
            slots = await _lease_slots(plan, store, docker, notice, gateways)
            if slots is None:
                return EXIT_USAGE  # a busy slot (said in one line)
            # the tool's shared state initialised once, before any slot of any launch starts
            await initialise_tool_state(docker, plan.request.tool, slots[0].spec, notice)
            supervisor = Supervisor(plan=plan, docker=docker, store=store, slots=slots, log=log,
                                    interactive=not plan.request.supervised, log_lines=receive, ssh_keys=ssh_keys,
                                    gateways=gateways)
            log.info("launch", containers=[s.spec.name for s in slots], image=plan.image)
            async with guardian(plan.facts.state_home, [s.launch.run_id for s in slots]):
                await _run_tasks(supervisor)
            return _exit_code(supervisor)
    except LlmDockerError as error:  # the engine, the image, the state store, no free SSH port: one line
        notice(str(error))
        return error.exit_code
    finally:
        await send.aclose()
        await docker.close()


async def _lease_slots(plan: LaunchPlan, store: StateStore, docker: Engine,
                       notice: Notice, gateways: GatewayHolders) -> list[SlotRun] | None:
    """Prepare every slot, then take all their leases at once (or none): None after the
    one-line refusal when a slot is busy. Notices of the preparation wait until the leases
    are taken, so a refused launch says one line."""
    for _ in range(LEASE_ATTEMPTS):
        held: list[str] = []
        resolved_since = time.time()
        # this launch's early gateways (started or kept ones claimed) are its own: what they
        # hold is not taken — counted once the early start is over, claims included
        await gateways.early_done.wait()
        taken = (await claimed_ports(docker, exclude=gateways.runs)) if plan.config.llm_docker_ssh_enabled else set()
        slots = [await _prepare_slot(plan, store, planned, held.append, taken,
                                     await gateways.held_ssh_port(slot_container_name(plan, planned.slot)))
                 for planned in plan.slots]
        try:
            await store.record_launches([s.launch for s in slots], holder_alive=_launcher_alive,
                                        resolved_since=resolved_since)
        except SlotBusy as busy:
            _discard(slots)
            if busy.alive:
                notice(busy_message(busy))
                return None
            await recover_dead_launches(store, docker, plan.facts.state_home, notice, only={busy.holder.run_id})
            continue
        except SlotMoved:
            _discard(slots)
            continue
        except BaseException:
            _discard(slots)
            raise
        for message in dict.fromkeys(held):  # once, however many slots said it
            notice(message)
        for leased in slots:
            # Recorded before the container exists: what the agent creates is compared with this.
            tripwire.arm(plan.facts.state_home, leased.spec.name, leased.spec.layout.root, leased.spec.protection)
        return slots
    notice("the slots kept changing while this launch started — try again")
    return None


def _launcher_alive(holder: Launch) -> bool:
    """Liveness of a lease holder: only a provably dead launcher frees its slot; one we
    cannot judge from here (UNKNOWN) counts as alive — refuse, never steal."""
    launcher = launcher_from_journal(holder.launcher_pid, holder.launcher_start)
    return launcher_liveness(launcher) is not Liveness.DEAD


def _discard(slots: list[SlotRun]) -> None:
    for slot in slots:
        remove_tree(slot.run_folder)


async def _prepare_slot(plan: LaunchPlan, store: StateStore, planned: SlotPlan, notice: Notice,
                        ssh_taken: set[int] | None = None,
                        early_ssh: tuple[int, str | None] | None = None) -> SlotRun:
    """Resolve the slot's session and its SSH host port FIRST, then build its spec — once —
    and prepare its folders and journal row (the lease is taken by the caller)."""
    slot = planned.slot
    terminal = terminal_id(os.environ) if len(plan.slots) == 1 else f"supervise:{slot}"
    session = await resolve_session(
        store, plan.request, project=str(plan.project.root), workdir=plan.project.workdir, slot=slot,
        terminal=terminal, state_home=plan.facts.state_home,
        new_session_id=planned.session.session_id or str(uuid.uuid4()), notice=notice)
    ssh_port = None
    if plan.config.llm_docker_ssh_enabled:
        # `ssh_taken`: ports of other llm-docker containers and of this launch's earlier slots
        taken = ssh_taken if ssh_taken is not None else set()
        if early_ssh is not None:
            ssh_port, moved = early_ssh  # chosen the same way by the early gateway, which holds it
        else:
            ssh_port, moved = choose_host_port(plan.config.llm_docker_ssh_host_port, slot, taken)
        taken.add(ssh_port)
        if moved:
            notice(moved)
    spec = container_spec(plan, planned, session=session, ssh_host_port=ssh_port)
    folder = prepare_for_container(plan.request.tool, plan.facts.state_home, spec.project_home, spec.name,
                                   ssh=plan.config.llm_docker_ssh_enabled, workdir=spec.layout.workdir)
    for note in spec.protection.notes:
        notice(note)
    launch = new_launch(run_id=spec.name, tool=plan.request.tool.value, project=str(spec.layout.root),
                        workdir=spec.layout.workdir, slot=slot, terminal=terminal,
                        launcher_pid=plan.facts.launcher_pid,
                        # the start time plus host/boot/PID namespace, for launch.liveness
                        launcher_start=journal_start(plan.facts.launcher_start, plan.facts.here),
                        container=spec.name, session=session)
    return SlotRun(spec=spec, launch=launch, run_folder=folder)


async def _run_tasks(supervisor: Supervisor) -> None:
    async with anyio.create_task_group() as group:
        for task in TASKS:
            group.start_soon(task.run, supervisor, name=task.NAME)
        for slot in supervisor.slots:
            await slot.saved.wait()
            await slot.surface_checked.wait()
        group.cancel_scope.cancel()


def _exit_code(supervisor: Supervisor) -> int:
    """The launch's exit code: the one slot's; of several, 130 once Ctrl-C stopped them (a slot
    that had failed before is in the notices and the log), else the first failure."""
    codes = [slot.exit_code if slot.exit_code is not None else EXIT_FAILURE for slot in supervisor.slots]
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if len(codes) == 1:
        return codes[0]
    return next((code for code in codes if code != 0), 0)


async def with_bridge_host_address(plan: LaunchPlan, docker: Engine, notice: Notice) -> LaunchPlan:
    """The plan with the engine's address of the host on the agents' network, when their
    `host.docker.internal` must name it (Podman on a bridge, no gateway:
    `launch.enginekind`) — one `GET /networks/<NetworkMode>` per launch; the plan stays pure."""
    if plan.gateway or not needs_bridge_host_address(plan.engine_kind, plan.network_mode):
        return plan
    address = await docker.networks.gateway_address(plan.network_mode)
    if address is None:
        notice(f"warning: the network {plan.network_mode} has no gateway address — host.docker.internal is not "
               "mapped in the agent's container")
    return dataclasses.replace(plan, bridge_host_address=address)


def engine_refusal(plan: LaunchPlan) -> LlmDockerError | None:
    """What this launch needs that its engine lacks, as one line (None: nothing) — asked once
    the engine is known, before any agent container exists.

    Podman's Docker API (4.3 checked) ignores `HostConfig.ReadonlyPaths`, so the image's
    guard-rails (`/etc/claude-code`, `/opt/llm-docker`, the entrypoint) hold by their file
    permissions alone: root's files, not writable by others. That still holds for the agent
    of a non-root launcher with the sandbox on (its uid, no capabilities), but not for an agent
    running as root (a launch by uid 0: the agent runs as the launcher's uid) — it owns those
    files — nor for one with SANDBOX_ENABLED=false (Docker's default capabilities override
    file permissions)."""
    if plan.engine_kind is not EngineKind.PODMAN:
        return None
    lost = ("Podman ignores ReadonlyPaths, which keep the image's guard-rails (/etc/claude-code, /opt/llm-docker) "
            "read-only for an agent")
    if plan.facts.uid == 0:
        return EngineError(f"{lost} running as root — launch as a non-root user (the agent runs as your uid), "
                           "or use Docker")
    if not plan.config.sandbox_enabled:
        return ConfigError(f"{lost} with SANDBOX_ENABLED=false — set SANDBOX_ENABLED=true, or use Docker")
    return None
