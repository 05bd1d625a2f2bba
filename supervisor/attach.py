"""`llm-docker attach <tool> <slot> [DIR]`: this terminal to a running slot.

Talks to the engine directly (the slot's container keeps its own TTY, so any number of
windows can come and go): raw mode, keystrokes in, output out, the window size followed.
Ctrl-P Ctrl-Q detaches and leaves the slot running; closing the window (hang-up, SIGTERM)
ends the slot — its supervisor then saves it and removes the container.
"""

from __future__ import annotations

import signal
import sys

import anyio

from engine.client import Engine
from engine.containers import Container
from engine.errors import EngineError
from launch.layout import DETACH_KEYS
from launch.spec import LABEL_PREFIX as LABEL
from supervisor.context import STOP_GRACE_SECONDS, write_stderr
from supervisor.proxy import follow_window_size, pump_output, read_terminal
from supervisor.terminal import raw_mode, window_size


async def find_slot_container(docker: Engine, *, tool: str, project_token: str, slot: int,
                              launch_id: str | None = None) -> list[Container]:
    """Running containers of (tool, project, slot), newest first."""
    labels = [f"{LABEL}tool={tool}", f"{LABEL}project={project_token}", f"{LABEL}slot={slot}"]
    if launch_id:
        labels.append(f"{LABEL}launch-id={launch_id}")
    found = await docker.containers.list(filters={"label": labels, "status": ["running"]})
    return sorted(found, key=lambda c: c.created, reverse=True)


async def attach(docker: Engine, container: Container, *, title: str) -> int:
    """Proxy this terminal to `container` until detach, exit or hang-up; the exit code."""
    fd = sys.stdin.fileno()
    write_stderr(f"attached to {title} — detach: Ctrl-P Ctrl-Q; closing this window ends the slot\n")
    ended_slot = False

    async def stop() -> None:
        nonlocal ended_slot
        ended_slot = True
        with anyio.CancelScope(shield=True):
            try:
                await container.stop(grace_seconds=int(STOP_GRACE_SECONDS))
            except EngineError:
                pass

    with raw_mode(fd):
        async with container.attach(stdin=True, stdout=True, stderr=True, detach_keys=DETACH_KEYS) as stream:
            async with anyio.create_task_group() as group:
                async def keystrokes() -> None:
                    while data := await read_terminal(fd):
                        await stream.write_in(data)
                    await stop()
                    group.cancel_scope.cancel()

                async def hang_ups() -> None:
                    with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM) as signals:
                        async for _ in signals:
                            await stop()
                            group.cancel_scope.cancel()
                            return

                group.start_soon(keystrokes)
                group.start_soon(hang_ups)
                group.start_soon(follow_window_size, container, fd)
                await _redraw(container, fd)
                await pump_output(stream)
                group.cancel_scope.cancel()
    info = await container.show()
    state = info.get("State", {})
    if state.get("Running") and not ended_slot:
        write_stderr(f"\ndetached from {title}; it keeps running\n")
        return 0
    code = int(state.get("ExitCode", 0) or 0)
    write_stderr(f"\n{title} ended (exit code {code})\n")
    return code


async def _redraw(container: Container, fd: int) -> None:
    """A TUI redraws on SIGWINCH, which the kernel sends only when the size changes: nudge it."""
    size = window_size(fd)
    if size is None:
        return
    rows, columns = size
    try:
        await container.resize(rows=rows, columns=max(1, columns - 1))
        await container.resize(rows=rows, columns=columns)
    except EngineError:
        pass
