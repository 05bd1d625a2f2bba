"""Run a launch plan: the synchronous entry point of `cld` / `ocd` into the supervisor.

The slots' network gateways start first (`supervisor.gateway.gateway_holders`, `early`),
and the rest of the supervisor is imported meanwhile, in a worker thread: the engine sets
up each gateway's network while Python loads the modules a launch needs anyway. The
gateways' holders are one task group around the whole supervisor run.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import anyio

from launch.errors import EXIT_INTERRUPTED, LlmDockerError
from launch.plan import LaunchPlan


def run_plan(plan: LaunchPlan) -> int:
    """Supervise the plan's containers on the asyncio backend (aiodocker needs it). The
    supervisor reports its own refusals; one that escapes it (from the gateways' task group,
    say) is still one line and its exit code, never a traceback."""
    try:
        return anyio.run(_run, plan, backend="asyncio")
    except KeyboardInterrupt:
        # Ctrl-C before the supervisor's own signal handling runs (an image build, say):
        # asyncio has cancelled the run, so its cleanup ran; one line, the shell's 130
        print(f"{plan.request.tool.launcher}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (LlmDockerError, BaseExceptionGroup) as raised:
        error = _only_error(raised)
        if error is None:
            raise
        print(f"{plan.request.tool.launcher}: {error}", file=sys.stderr)
        return error.exit_code


def _only_error(raised: BaseException) -> LlmDockerError | None:
    """The user-facing error `raised` is, or the first of a task group's when every one of
    them is user-facing (anything else is a bug: its traceback is kept)."""
    if isinstance(raised, LlmDockerError):
        return raised
    if isinstance(raised, BaseExceptionGroup):
        found = [_only_error(inner) for inner in raised.exceptions]
        if found and all(error is not None for error in found):
            return found[0]
    return None


async def _run(plan: LaunchPlan) -> int:
    from supervisor.gateway import gateway_holders

    async with gateway_holders(plan, early=True) as gateways:
        supervise = await anyio.to_thread.run_sync(_load_supervise)
        return await supervise(plan, gateways)


def _load_supervise() -> Callable[..., Awaitable[int]]:
    from supervisor.supervise import supervise

    return supervise
