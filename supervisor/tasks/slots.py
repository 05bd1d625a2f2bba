"""The slots task: once a slot's container is gone, save the session it used.

The save runs in a shielded cancel scope, so it happens on a normal exit, on a graceful
stop, and when another task crashed and the group is being cancelled.
"""

from __future__ import annotations

import anyio

from supervisor.context import CLEANUP_SECONDS, SlotRun, Supervisor
from supervisor.slots import save_launch

NAME = "slots"
SAVE_SECONDS = 30.0


async def run(supervisor: Supervisor) -> None:
    await supervisor.for_each_slot(save_when_gone)


async def save_when_gone(supervisor: Supervisor, slot: SlotRun) -> None:
    try:
        await slot.container_gone.wait()
    finally:
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CLEANUP_SECONDS + 5):
                    await slot.container_gone.wait()
                with anyio.move_on_after(SAVE_SECONDS):
                    await save_launch(supervisor.store, slot.launch, supervisor.state_home, supervisor.notice)
        finally:
            slot.saved.set()
