"""Run a launch plan: the synchronous entry point of `cld` / `ocd` into the supervisor."""

from __future__ import annotations

import anyio

from launch.plan import LaunchPlan
from supervisor.supervise import supervise


def run_plan(plan: LaunchPlan) -> int:
    """Supervise the plan's containers on the asyncio backend (aiodocker needs it)."""
    return anyio.run(supervise, plan, backend="asyncio")
