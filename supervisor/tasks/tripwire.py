"""The tripwire task: once a slot's container is gone, settle its tripwire.

Whatever the agent managed to change of the project's host-executed surface that the pins
could not hold (`supervisor.tripwire`) is quarantined and restored before the launcher
returns — on a normal exit, a graceful stop, or while a crashed task group unwinds (the
check runs shielded, in a worker thread, with a time bound).
"""

from __future__ import annotations

import anyio

from supervisor import tripwire
from supervisor.context import SlotRun, Supervisor, after_container_gone

NAME = "tripwire"
SETTLE_SECONDS = 30.0


async def run(supervisor: Supervisor) -> None:
    # threads of the check's own: the default pool is shared with whatever else the loop runs
    # (the builder-api's file reads, which the agent drives), so it could be taken up
    threads = anyio.CapacityLimiter(max(len(supervisor.slots), 1))
    await supervisor.for_each_slot(lambda supervisor, slot: settle_when_gone(supervisor, slot, threads))


async def settle_when_gone(supervisor: Supervisor, slot: SlotRun, threads: anyio.CapacityLimiter) -> None:
    async def settle() -> None:
        with anyio.move_on_after(SETTLE_SECONDS) as bound:
            try:
                report = await anyio.to_thread.run_sync(tripwire.settle, supervisor.state_home, slot.launch.run_id,
                                                        abandon_on_cancel=True, limiter=threads)
            except Exception as error:  # whatever the agent's files make of the check, the user hears of it
                supervisor.log.exception("tripwire-failed")
                supervisor.notice(f"tripwire: could not check the project ({type(error).__name__}: {error}) — "
                                  "review its .git and tool settings before running git there")
                return
        if bound.cancelled_caught:
            supervisor.log.warning("tripwire-timeout", seconds=SETTLE_SECONDS)
            supervisor.notice(f"tripwire: the check of the project did not finish within {SETTLE_SECONDS:g} s — "
                              "review its .git and tool settings before running git there")
            return
        if report is not None and report.changes:
            supervisor.log.warning("tripwire", project=str(report.root), quarantine=str(report.quarantine),
                                   changes=[c.relative for c in report.changes])
        message = report.notice() if report is not None else None
        if message is not None:
            supervisor.notice(message)

    await after_container_gone(slot, settle, seconds=SETTLE_SECONDS + 5, done=slot.surface_checked)
