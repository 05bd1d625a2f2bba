"""One `/ws` session: `hello`, then every event, new log lines of the subscribed
aliases, a `status` heartbeat every 5 s, and answers to `status`/`queue`/`events` commands.

All outbound frames go through one bounded mailbox (512 frames): producers never block,
and a client that stops reading loses its oldest frames instead of stalling anyone else
(upstream disconnected it). The session is a task group: sender, receiver and heartbeat;
the first to end ends them all. Log lines come from the API's shared `FollowerHub` (one
watcher per file for all sessions), and `accept` admits a session only within the caps
(`[security].max_ws_clients`, `max_followers`), answering 503 JSON otherwise.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from builder_api.events import Mailbox
from builder_api.live import AtCapacity

if TYPE_CHECKING:
    from builder_api.app import BuilderAPI
    from builder_api.routing import Receive, Send

HEARTBEAT_S = 5.0
MAX_INBOUND_BYTES = 1 << 20


class Session:
    def __init__(self, api: BuilderAPI, receive: Receive, send: Send, aliases: list[str]) -> None:
        self.api = api
        self._receive = receive
        self._send = send
        self.aliases = aliases
        self.mailbox = Mailbox()

    async def run(self) -> None:
        self.mailbox.put({"type": "hello", "logs": self.aliases, "heartbeat_s": HEARTBEAT_S})
        paths = self.api.config.log_aliases
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.api.events.subscribe(self.mailbox))
            for alias in self.aliases:
                stack.enter_context(self.api.followers.follow(paths[alias], alias, self.mailbox))
            async with anyio.create_task_group() as group:
                async def until_closed() -> None:
                    await self._receive_commands()
                    group.cancel_scope.cancel()

                group.start_soon(until_closed)
                group.start_soon(self._send_frames)
                group.start_soon(self._heartbeat)

    async def _send_frames(self) -> None:
        while True:
            frame = await self.mailbox.get()
            await self._send({"type": "websocket.send", "text": json.dumps(frame, ensure_ascii=False, default=str)})

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_S)
            self.mailbox.put({"type": "status", "runtime": self.api.runtime.status()})

    async def _receive_commands(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None or len(text) > MAX_INBOUND_BYTES:
                continue
            try:
                command = json.loads(text)
            except ValueError:
                continue
            if isinstance(command, dict) and command.get("cmd") == "events":  # a file read: off the loop
                self.mailbox.put(await anyio.to_thread.run_sync(self._answer, command, abandon_on_cancel=True))
            else:
                self.mailbox.put(self._answer(command))

    def _answer(self, command: Any) -> dict[str, Any]:
        if not isinstance(command, dict):
            return {"type": "error", "error": "commands are JSON objects like {\"cmd\": \"status\"}"}
        name = command.get("cmd")
        if name == "status":
            current = self.api.queue.current
            return {"type": "status", "runtime": self.api.runtime.status(),
                    "current_build": {**current.public(), "log_tail": ""} if current else None}
        if name == "queue":
            return {"type": "queue", **self.api.queue.snapshot()}
        if name == "events":
            try:
                since = float(command["since"]) if command.get("since") is not None else None
                pid = int(command["pid"]) if command.get("pid") is not None else None
                n = int(command.get("n", 200))
            except (TypeError, ValueError):
                return {"type": "error", "error": "events: since, pid and n must be numbers"}
            return {"type": "events", **self.api.events.query(event_type=command.get("type"), since=since, n=n,
                                                              pid=pid)}
        return {"type": "error", "error": f"unknown cmd: {name!r}"}


Deny = Callable[[int, dict[str, Any]], Awaitable[None]]


async def accept(api: BuilderAPI, wanted: str | None, receive: Receive, send: Send, deny: Deny) -> None:
    """Open an authenticated `/ws` session following the aliases in `wanted` (all when
    None or blank), or `deny` it with 503 when a client or follower cap is reached."""
    aliases = api.config.log_aliases
    if wanted is None or not wanted.strip():
        subscribed = sorted(aliases)
    else:
        subscribed = [a for a in (part.strip() for part in wanted.split(",")) if a in aliases]
    try:
        with api.followers.session(len(subscribed)):  # only its entry raises AtCapacity
            if (await receive())["type"] != "websocket.connect":
                return
            await send({"type": "websocket.accept"})
            await Session(api, receive, send, subscribed).run()
    except AtCapacity as full:
        await deny(full.status, full.body)
