"""One supervisor run: every task of `supervisor.tasks` in ONE anyio task group.

Order of events:

1. connect to the engine; make sure the image exists and is current (`image.ensure`:
   build on first run or on --build/--rebuild-force, say when it is stale);
2. open the state store, finish saves left by dead launchers, `--clean` if asked;
3. per container: resolve the session from the slot store, rebuild the spec with it,
   create its folders, write the journal row;
4. start the guardian (the SIGKILL lease), then run the tasks until every slot is saved;
5. tell the guardian we are done; the exit code is the tool's.
"""

from __future__ import annotations

import os
import uuid

import anyio

from image.base import BaseImageError
from image.build import BuildError
from image.certs import CertificateError
from image.ensure import ensure_image
from image.plan import BuildInputError
from launch.plan import LaunchPlan
from launch.spec import OFFLINE_NETWORK, ContainerSpec, container_spec
from launch.state import prepare_for_container
from supervisor.context import SlotRun, Supervisor, write_stderr
from supervisor.engine import EngineError, connect, ensure_network
from supervisor.guardian import guardian
from supervisor.logconfig import LOG_BUFFER_LINES, configure_logging
from supervisor.recovery import collect_garbage, recover_dead_launches
from supervisor.slots import Notice, new_launch, resolve_session
from supervisor.store import StateStore
from supervisor.tasks import TASKS
from supervisor.terminal import terminal_id

EXIT_FAILURE = 1
EXIT_USAGE = 2


async def supervise(plan: LaunchPlan) -> int:
    send, receive = anyio.create_memory_object_stream[str](LOG_BUFFER_LINES)
    log = configure_logging(send, development=plan.config.node_env == "development",
                            launch_id=plan.facts.launch_id, tool=plan.request.tool.value)
    launcher = plan.request.tool.launcher

    def notice(message: str) -> None:
        log.info("notice", message=message)
        write_stderr(f"{launcher}: {message}\n")

    try:
        docker = await connect()
    except EngineError as error:
        notice(str(error))
        return error.exit_code
    try:
        image = plan.specs[0].create["Image"]
        try:
            await ensure_image(docker, plan.config, plan.request.tool, plan.facts.state_home,
                               build=plan.request.build, no_cache=plan.request.rebuild_force, notice=notice)
        except (CertificateError, BuildInputError) as error:
            notice(str(error))
            return EXIT_USAGE
        except (BuildError, BaseImageError) as error:
            notice(str(error))
            return EXIT_FAILURE
        if plan.specs[0].create["HostConfig"]["NetworkMode"] == OFFLINE_NETWORK:
            await ensure_network(docker, OFFLINE_NETWORK, internal=True)
        async with StateStore.open(plan.facts.state_home) as store:
            await recover_dead_launches(store, docker, plan.facts.state_home, notice)
            if plan.request.clean:
                removed = await collect_garbage(store, docker, plan.facts.state_home, notice)
                notice(f"--clean: removed {removed} container(s) of dead launchers; live sessions untouched")
            slots = [await _prepare_slot(plan, store, planned, slot, notice)
                     for planned, slot in zip(plan.specs, plan.request.window_slots(), strict=True)]
            supervisor = Supervisor(plan=plan, docker=docker, store=store, slots=slots, log=log,
                                    interactive=not plan.request.supervised, log_lines=receive)
            log.info("launch", containers=[s.spec.name for s in slots], image=image)
            async with guardian(plan.facts.state_home, [s.launch.run_id for s in slots]):
                await _run_tasks(supervisor)
            return _exit_code(supervisor)
    except EngineError as error:
        notice(str(error))
        return error.exit_code
    finally:
        await send.aclose()
        await docker.close()


async def _prepare_slot(plan: LaunchPlan, store: StateStore, planned: ContainerSpec, slot: int | None,
                        notice: Notice) -> SlotRun:
    terminal = terminal_id(os.environ) if len(plan.specs) == 1 else f"supervise:{slot}"
    session = await resolve_session(
        store, plan.request, project=str(planned.layout.root), workdir=planned.layout.workdir, slot=slot,
        terminal=terminal, state_home=plan.facts.state_home,
        new_session_id=planned.session.session_id or str(uuid.uuid4()), notice=notice)
    spec = container_spec(plan.request, plan.config, plan.facts, slot=slot, session=session)
    folder = prepare_for_container(plan.request.tool, plan.facts.state_home, spec.name,
                                   ssh=plan.config.llm_docker_ssh_enabled)
    launch = new_launch(run_id=spec.name, tool=plan.request.tool.value, project=str(spec.layout.root),
                        workdir=spec.layout.workdir, slot=slot, terminal=terminal,
                        launcher_pid=plan.facts.launcher_pid, launcher_start=plan.facts.launcher_start,
                        container=spec.name, session=session)
    await store.record_launch(launch)
    return SlotRun(spec=spec, launch=launch, run_folder=folder)


async def _run_tasks(supervisor: Supervisor) -> None:
    async with anyio.create_task_group() as group:
        for task in TASKS:
            group.start_soon(task.run, supervisor, name=task.NAME)
        for slot in supervisor.slots:
            await slot.saved.wait()
        group.cancel_scope.cancel()


def _exit_code(supervisor: Supervisor) -> int:
    codes = [slot.exit_code if slot.exit_code is not None else EXIT_FAILURE for slot in supervisor.slots]
    if len(codes) == 1:
        return codes[0]
    return next((code for code in codes if code != 0), 0)
