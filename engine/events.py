"""The engine's event stream (`GET /events`), for watching containers without polling.

The stream ends when the engine drops the connection (it stopped, or restarted): for a
watcher that is news in itself, so the end is an ordinary end of iteration, never an error.

The `event` filter (which actions) is applied here, not by the engine: engines name the
actions differently in the filter than in the events they send — Podman (4.3 checked) sends
a container's exit as `die` but matches it only as `died`, so `event=die` silently matched
nothing there. The engine still narrows the stream by every other filter (`type`, `label`,
...), so what crosses the connection is the few events of the watched containers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiodocker
import aiohttp
import anyio
from aiodocker.events import DockerEvents

#: The filter key naming actions ("die", "oom", ...): matched here (see the module docstring).
ACTION_FILTER = "event"


@contextlib.asynccontextmanager
async def watch(docker: aiodocker.Docker, filters: Mapping[str, Sequence[str]]) -> AsyncIterator[EventStream]:
    """The events matching `filters` (e.g. {"type": ["container"], "event": ["die"]}) from
    now on, while the context is open. Its reader runs in a task of its own, so events
    queue up even while the caller is busy with the previous one."""
    events = DockerEvents(docker)  # type: ignore[no-untyped-call]  # aiodocker's events are unannotated
    subscriber = events.subscribe(create_task=False)  # type: ignore[no-untyped-call]  # same
    by_engine = {key: list(values) for key, values in filters.items() if key != ACTION_FILTER}
    async with anyio.create_task_group() as group:
        group.start_soon(_read, events, json.dumps(by_engine))
        try:
            yield EventStream(subscriber, actions=frozenset(filters.get(ACTION_FILTER, ())))
        finally:
            group.cancel_scope.cancel()


def action_matches(event: Mapping[str, Any], actions: frozenset[str]) -> bool:
    """Whether `event` is one of `actions` (all match when there are none). As the engine's
    own filter does, an action with a detail (`exec_start: sh -c …`, `health_status:
    healthy`) matches by the part before the colon too."""
    if not actions:
        return True
    action = str(event.get("Action") or event.get("status") or "")
    return action in actions or action.split(":", 1)[0].strip() in actions


class EventStream:
    """`async for event in stream`: each event as the engine sent it (a JSON object), of the
    requested actions only."""

    def __init__(self, subscriber: Any, *, actions: frozenset[str] = frozenset()) -> None:
        self._subscriber = subscriber
        self._actions = actions

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            event = await self._subscriber.get()
            if event is None:  # the reader published the end of the stream
                raise StopAsyncIteration
            if action_matches(event, self._actions):
                return dict(event)


async def _read(events: DockerEvents, filters: str) -> None:
    try:
        await events.run(filters=filters)
    except (aiodocker.DockerError, aiohttp.ClientError, OSError):
        pass  # the subscriber sees the end of the stream either way (`run` publishes it)
