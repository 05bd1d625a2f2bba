"""The slots task: once a slot's container is gone, save the session it used.

The save runs in a shielded cancel scope, so it happens on a normal exit, on a graceful
stop, and when another task crashed and the group is being cancelled.

A save the state database refuses (`StateError`: a full disk, a read-only or corrupt file)
ends this slot with one line and the error's exit code (2), not a crash of the whole group: the journal
row stays open and the run folder is kept, so the next launch's recovery finishes it.
"""

from __future__ import annotations

from supervisor.context import SlotRun, Supervisor, after_container_gone
from supervisor.slots import save_launch
from supervisor.store import StateError

NAME = "slots"
SAVE_SECONDS = 30.0


async def run(supervisor: Supervisor) -> None:
    await supervisor.for_each_slot(save_when_gone)


async def save_when_gone(supervisor: Supervisor, slot: SlotRun) -> None:
    async def save() -> None:
        try:
            await save_launch(supervisor.store, slot.launch, supervisor.state_home, supervisor.notice)
        except StateError as error:
            slot.error = str(error)
            slot.exit_code = error.exit_code
            supervisor.notice(f"{slot.label} not saved: {error}")

    await after_container_gone(slot, save, seconds=SAVE_SECONDS, done=slot.saved)
