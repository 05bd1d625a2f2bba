"""The container task: create, start, attach, wait, remove — for every slot.

The slot that owns the launching terminal gets the terminal proxy over the attach stream:

* with a TTY on stdin: raw mode, keystrokes to the container, output to the terminal,
  SIGWINCH resizes the container's TTY, and the terminal is restored on every way out;
* without one (pipes, CI): stdin is forwarded until EOF, then the container's stdin is
  closed; stdout and stderr stay separate — `cld -- -p "q" > answer.txt` works.

A supervised slot runs headless: its output is drained (the agent is ready at its first
byte) and its end kept (`supervisor.output_tail`), so an agent that dies with an error is
reported with its last lines — its container, and the message in it, is removed next.
A slot stopped by Ctrl-C exits 130 whatever the tool made of its SIGTERM (`tasks.signals`).

Removal runs in a shielded cancel scope with a time bound, so a crash of any other task
still removes the container.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import anyio

from engine.containers import Container
from engine.errors import EngineError
from engine.streams import AttachStream
from launch.errors import EXIT_ENGINE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_KILLED
from supervisor.context import CLEANUP_SECONDS, STOP_GRACE_SECONDS, SlotRun, Supervisor
from supervisor.gateway import GatewayError, GatewayRun
from supervisor.memory import report_container_killed, report_process_killed
from supervisor.output_tail import OutputTail
from supervisor.proxy import follow_window_size, pump_input, pump_output, read_terminal
from supervisor.secretfile import write_secrets_file
from supervisor.tasks.signals import INTERRUPT_REASONS
from supervisor.terminal import raw_mode
from supervisor.tool_init import space_starts

NAME = "container"
#: How long the output's last bytes may trail the container's exit on the attach stream.
DRAIN_SECONDS = 2.0
#: Awaited right before `start` (after the attach): the slot's gateway verdict.
BeforeStart = Callable[[], Awaitable[None]]


async def run(supervisor: Supervisor) -> None:
    await supervisor.for_each_slot(run_slot)


async def run_slot(supervisor: Supervisor, slot: SlotRun) -> None:
    container: Container | None = None
    gateway = slot.spec.gateway
    gateway_run: GatewayRun | None = None
    try:
        # before the container exists: its entrypoint reads the file at start
        await anyio.to_thread.run_sync(write_secrets_file, slot.run_folder, slot.spec.secrets)
        if gateway is not None:
            if supervisor.gateways is None:  # fail closed: nothing could hold its gateway
                raise GatewayError("the network gateway cannot be started (no gateway holder)")
            # the gateway started early when it is exactly this slot's, else a new one; it
            # exists once `take` returns (the agent's container names its namespace)
            gateway_run = await supervisor.gateways.take(gateway)
            if gateway_run.settled.is_set():
                await gateway_run.verified()  # it could not even be created
            await slot.host_ports_ready.wait()
            if slot.host_ports_error is not None:
                raise GatewayError(slot.host_ports_error)
        try:
            # created while the gateway proves its policy; STARTED only after the verdict
            container = await supervisor.docker.containers.create(slot.spec.create, name=slot.spec.name)
        except EngineError:
            if gateway_run is not None:
                await gateway_run.verified()  # a failed gateway explains a failed create
            raise
        slot.container_id = container.id
        supervisor.log.info("container-created", container=slot.spec.name, id=container.id[:12])
        verified_run = gateway_run

        async def verdict() -> None:
            """The last step before the start: attached already (off the critical path),
            the agent starts only once its gateway proved the policy — fail closed."""
            if verified_run is not None:
                # proven from inside the cage, as the agent's uid, before its first instruction
                await verified_run.verified()
                supervisor.log.info("network-policy-verified", gateway=verified_run.spec.name,
                                    policy=verified_run.spec.policy.describe())
            # agents sharing a database of their own start apart (supervisor/tool_init.py)
            await space_starts(slot.spec.project_home, supervisor.plan.request.tool, supervisor.notice)

        if supervisor.interactive and slot is supervisor.slots[0]:
            await _attached(supervisor, slot, container, verdict)
        elif supervisor.supervised:
            await _headless(supervisor, slot, container, verdict)
        else:
            await _detached(supervisor, slot, container, verdict)
    except EngineError as error:
        slot.error = str(error)
        slot.exit_code = EXIT_ENGINE
        supervisor.notice(f"{slot.label}: Docker: {slot.error}")
    except GatewayError as error:
        slot.error = str(error)
        slot.exit_code = EXIT_FAILURE
        supervisor.notice(f"{slot.label}: {error} — the agent was not started")
    except OSError as error:
        slot.error = f"cannot write the secrets file in {slot.run_folder}: {error.strerror or error}"
        slot.exit_code = EXIT_FAILURE
        supervisor.notice(f"{slot.label}: {slot.error}")
    finally:
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_SECONDS):
                if gateway_run is not None and gateway_run.keepable:
                    # kept for the slot's next launch: only once this agent is gone from its
                    # namespace (else it ends, as below)
                    gone = False
                    try:
                        gone = container is None or await _remove(supervisor, slot, container)
                    finally:
                        await _end_gateway(supervisor, gateway_run, keep=gone)
                else:
                    # side by side: the agent's namespace outlives its gateway container, and
                    # its rules with it, so ending both at once opens nothing
                    async with anyio.create_task_group() as removal:
                        if container is not None:
                            removal.start_soon(_remove, supervisor, slot, container)
                        if gateway_run is not None:
                            removal.start_soon(_end_gateway, supervisor, gateway_run)
        finally:
            slot.container_gone.set()
            slot.ready.set()  # never started: nobody may wait for it forever


async def _end_gateway(supervisor: Supervisor, gateway: GatewayRun, *, keep: bool = False) -> None:
    """One signal: the engine removes the gateway (AutoRemove) without the launch waiting
    for its network's teardown; its lease (stdin) ends it even if the signal is lost.
    `keep`: no signal — the lease ends, and the gateway waits for the slot's next launch."""
    gateway.release(keep=keep)
    await gateway.ended.wait()
    supervisor.log.info("gateway-kept" if gateway.kept else "gateway-ended", gateway=gateway.spec.name)


async def _detached(supervisor: Supervisor, slot: SlotRun, container: Container, verdict: BeforeStart) -> None:
    await verdict()
    await container.start()
    slot.started.set()
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_request, slot, container)
        slot.exit_code = _exit_status(slot, await _wait(container))
        group.cancel_scope.cancel()


async def _headless(supervisor: Supervisor, slot: SlotRun, container: Container, verdict: BeforeStart) -> None:
    """A supervised slot: running on its own TTY, attached to from windows (`llm-docker
    attach`). The supervisor reads its output to know when the agent is up, and keeps its
    end to say why the agent died."""
    tail = OutputTail()
    drained = anyio.Event()
    async with container.attach(stdout=True, stderr=True, logs=False) as stream:
        await verdict()
        await container.start()
        slot.started.set()
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_request, slot, container)
            group.start_soon(_drain, supervisor, slot, stream, tail, drained)
            slot.exit_code = code = _exit_status(slot, await _wait(container))
            with anyio.move_on_after(DRAIN_SECONDS):
                await drained.wait()  # the last lines may still be on their way
            group.cancel_scope.cancel()
    if not slot.stop_requested.is_set() and code != EXIT_KILLED:
        _report_exit(supervisor, slot, code, tail)


async def _drain(supervisor: Supervisor, slot: SlotRun, stream: AttachStream, tail: OutputTail,
                 drained: anyio.Event) -> None:
    """Ready = the agent's first output, seen on the attach stream opened before start
    (no polling). All of it is drained so it can never back up; its end is kept."""
    while (message := await stream.read_out()) is not None:
        supervisor.mark_ready(slot)
        tail.feed(message.data)
    drained.set()


def _report_exit(supervisor: Supervisor, slot: SlotRun, code: int, tail: OutputTail) -> None:
    """The agent ended on its own: say so — after a failure with its last lines, which its
    container (removed next) took along otherwise — in the notice and the structured log."""
    last = tail.lines() if code != 0 else []
    supervisor.log.info("agent-exited", container=slot.spec.name, slot=slot.launch.slot, code=code,
                        last_output=last)
    message = f"{slot.label}: the agent exited (code {code}); the other slots go on"
    if last:
        message += " — its last output:\n" + "\n".join(f"  | {line}" for line in last)
    supervisor.notice(message)


async def _attached(supervisor: Supervisor, slot: SlotRun, container: Container, verdict: BeforeStart) -> None:
    tty = bool(slot.spec.create.get("Tty"))
    async with container.attach(stdin=True, stdout=True, stderr=True, logs=False) as stream:
        await verdict()
        await container.start()
        slot.started.set()
        if tty and sys.stdin.isatty():
            with raw_mode(sys.stdin.fileno()):
                supervisor.raw_terminal = True
                try:
                    await _proxy(supervisor, slot, container, stream, tty=True)
                finally:
                    supervisor.raw_terminal = False
        else:
            await _proxy(supervisor, slot, container, stream, tty=False)


async def _proxy(supervisor: Supervisor, slot: SlotRun, container: Container, stream: AttachStream,
                 *, tty: bool) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_request, slot, container)
        if tty:
            group.start_soon(_pump_terminal_input, slot, stream)
            group.start_soon(follow_window_size, container, sys.stdin.fileno())
        else:
            group.start_soon(_pump_piped_input, stream)
        await pump_output(stream)
        slot.exit_code = _exit_status(slot, await _wait(container))
        group.cancel_scope.cancel()


async def _pump_terminal_input(slot: SlotRun, stream: AttachStream) -> None:
    fd = sys.stdin.fileno()
    while data := await read_terminal(fd):
        await stream.write_in(data)
    slot.request_stop("the terminal closed")


async def _pump_piped_input(stream: AttachStream) -> None:
    """Forward stdin (pipe, FIFO, socket, file, /dev/null or closed) until EOF, then close
    the container's stdin. Cancelled when the container is gone, whatever stdin is doing
    (`proxy.pump_input` never leaves a thread blocked on it)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = -1
    if fd >= 0:
        await pump_input(fd, stream.write_in)
    stream.close_stdin()  # EOF for the container, its output keeps flowing


async def _stop_on_request(slot: SlotRun, container: Container) -> None:
    await slot.stop_requested.wait()
    try:
        await container.stop(grace_seconds=int(STOP_GRACE_SECONDS))
    except EngineError:
        pass  # already gone


def _exit_status(slot: SlotRun, code: int) -> int:
    """The slot's exit code: 130 once Ctrl-C stopped it (the tool's own answer to the stop
    — 143, 137, even 0 — would hide the interrupt), else the tool's."""
    if slot.stop_requested.is_set() and slot.stop_reason in INTERRUPT_REASONS:
        return EXIT_INTERRUPTED
    return code


async def _wait(container: Container) -> int:
    try:
        result = await container.wait()
    except EngineError as error:
        if error.status == 404:
            return EXIT_KILLED  # removed from outside
        raise
    return int(result.get("StatusCode", 1))


async def _remove(supervisor: Supervisor, slot: SlotRun, container: Container) -> bool:
    """Remove the slot's agent container; True once it is known to be gone."""
    gone = False
    try:
        info = await container.show()
        slot.out_of_memory = slot.out_of_memory or bool(info.get("State", {}).get("OOMKilled"))
        if info.get("State", {}).get("Running"):
            await container.stop(grace_seconds=int(STOP_GRACE_SECONDS))
        await container.delete(force=True)
        gone = True
        supervisor.log.info("container-removed", container=slot.spec.name)
    except EngineError as error:
        gone = error.status == 404
        if error.status != 404:
            supervisor.log.warning("container-remove-failed", container=slot.spec.name, error=str(error))
    if slot.exit_code == EXIT_KILLED and not slot.stop_requested.is_set():
        others = " — the other slots go on" if supervisor.supervised and len(supervisor.slots) > 1 else ""
        if slot.out_of_memory:
            report_container_killed(supervisor, slot, others)
        else:
            supervisor.notice(f"{slot.label}: the container was killed from outside{others}")
    elif slot.out_of_memory:
        report_process_killed(supervisor, slot)  # if the watchdog has not said so yet
    return gone
