"""The engine's event stream (`GET /events`), for watching containers without polling.

The stream ends when the engine drops the connection (it stopped, or restarted): for a
watcher that is news in itself, so the end is an ordinary end of iteration, never an error.
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


@contextlib.asynccontextmanager
async def watch(docker: aiodocker.Docker, filters: Mapping[str, Sequence[str]]) -> AsyncIterator[EventStream]:
    """The events matching `filters` (e.g. {"type": ["container"], "event": ["die"]}) from
    now on, while the context is open. Its reader runs in a task of its own, so events
    queue up even while the caller is busy with the previous one."""
    events = DockerEvents(docker)  # type: ignore[no-untyped-call]  # aiodocker's events are unannotated
    subscriber = events.subscribe(create_task=False)  # type: ignore[no-untyped-call]  # same
    async with anyio.create_task_group() as group:
        group.start_soon(_read, events, json.dumps({key: list(values) for key, values in filters.items()}))
        try:
            yield EventStream(subscriber)
        finally:
            group.cancel_scope.cancel()


class EventStream:
    """`async for event in stream`: each event as the engine sent it (a JSON object)."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self._subscriber.get()
        if event is None:  # the reader published the end of the stream
            raise StopAsyncIteration
        return dict(event)


async def _read(events: DockerEvents, filters: str) -> None:
    try:
        await events.run(filters=filters)
    except (aiodocker.DockerError, aiohttp.ClientError, OSError):
        pass  # the subscriber sees the end of the stream either way (`run` publishes it)
