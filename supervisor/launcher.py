"""Run a launch plan: the synchronous entry point of `cld` / `ocd` into the supervisor.

The slots' network gateways start first (`supervisor.gateway.gateway_holders`, `early`),
and the rest of the supervisor is imported meanwhile, in a worker thread: the engine sets
up each gateway's network while Python loads the modules a launch needs anyway. The
gateways' holders are one task group around the whole supervisor run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from launch.plan import LaunchPlan


def run_plan(plan: LaunchPlan) -> int:
    """Supervise the plan's containers on the asyncio backend (aiodocker needs it)."""
    return anyio.run(_run, plan, backend="asyncio")


async def _run(plan: LaunchPlan) -> int:
    from supervisor.gateway import gateway_holders

    async with gateway_holders(plan, early=True) as gateways:
        supervise = await anyio.to_thread.run_sync(_load_supervise)
        return await supervise(plan, gateways)


def _load_supervise() -> Callable[..., Awaitable[int]]:
    from supervisor.supervise import supervise

    return supervise
