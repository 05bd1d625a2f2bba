"""Live log feeds for WebSocket sessions: ONE watcher per followed file, however many
clients follow it, and admission caps on clients and followers.

Each followed file has one `LogCursor`; its new lines are fanned out — the same frame
object to every subscriber — into the subscribers' own bounded mailboxes (which drop their
oldest frame rather than ever block). All files share ONE inotify instance (per-folder
watches, through a no-follow folder descriptor), so 300 clients cost one inotify instance,
not 300 (the per-user limit is 128 by default: the old one-instance-per-client design let
the agent starve every other program of the user). A full rescan every `RESCAN_S` catches
what a watch cannot see (a folder replaced under the watch); off Linux (and under the test
switch of `launch.portability`) the rescan is all.

The hub runs as one task of the API's task group (`run`); `follow` and `session` are
context managers, so nothing outlives its session.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from builder_api.events import Mailbox
from builder_api.logs import LogCursor
from builder_api.safefs import open_folder
from builder_api.watch import Inotify
from launch.portability import linux_mechanisms

RESCAN_S = 1.0
FALLBACK_POLL_S = 0.25


class AtCapacity(Exception):
    """A cap is reached: answer `status` (503) with `body` instead of opening the session."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["error"])
        self.status, self.body = status, body


@dataclasses.dataclass(eq=False)
class _Feed:
    path: Path
    cursor: LogCursor
    wd: int | None
    subscribers: dict[int, tuple[Mailbox, str]] = dataclasses.field(default_factory=dict)


class FollowerHub:
    def __init__(self, root: Callable[[], Path], max_clients: Callable[[], int],
                 max_followers: Callable[[], int]) -> None:
        self._root = root
        self._max_clients = max_clients
        self._max_followers = max_followers
        self._feeds: dict[Path, _Feed] = {}
        self._by_wd: dict[int, set[Path]] = {}
        self._inotify: Inotify | None = None
        self._tokens = itertools.count()
        self.clients = 0
        self.followers = 0

    # -- admission -------------------------------------------------------------------------------
    @contextmanager
    def session(self, follows: int) -> Iterator[None]:
        """Count one client following `follows` files; `AtCapacity` beyond the caps."""
        if self.clients >= self._max_clients():
            raise AtCapacity(503, {"error": "too many WebSocket clients", "limit": self._max_clients(),
                                   "hint": "close an idle session, or raise [security].max_ws_clients"})
        if self.followers + follows > self._max_followers():
            raise AtCapacity(503, {"error": "too many log followers", "limit": self._max_followers(),
                                   "hint": "follow fewer logs (?logs=a,b), or raise [security].max_followers"})
        self.clients += 1
        self.followers += follows
        try:
            yield
        finally:
            self.clients -= 1
            self.followers -= follows

    # -- subscriptions -----------------------------------------------------------------------------
    @contextmanager
    def follow(self, path: Path, alias: str, mailbox: Mailbox) -> Iterator[None]:
        """Put every new complete line of `path` into `mailbox` as a `log` frame of `alias`."""
        feed = self._feeds.get(path)
        if feed is None:
            feed = self._feeds[path] = _Feed(path, LogCursor(path, self._root()), self._watch(path.parent))
            if feed.wd is not None:
                self._by_wd.setdefault(feed.wd, set()).add(path)
        token = next(self._tokens)
        feed.subscribers[token] = (mailbox, alias)
        try:
            yield
        finally:
            del feed.subscribers[token]
            if not feed.subscribers:
                self._drop(feed)

    def _watch(self, folder: Path) -> int | None:
        if self._inotify is None:
            return None
        try:
            descriptor = open_folder(folder, self._root())
        except OSError:
            return None  # missing or refused: the rescan still looks (and reads safely)
        try:
            return self._inotify.watch_descriptor(descriptor)
        except OSError:
            return None
        finally:
            os.close(descriptor)

    def _drop(self, feed: _Feed) -> None:
        del self._feeds[feed.path]
        if feed.wd is None:
            return
        paths = self._by_wd.get(feed.wd, set())
        paths.discard(feed.path)
        if not paths:
            self._by_wd.pop(feed.wd, None)
            if self._inotify is not None:
                self._inotify.unwatch(feed.wd)

    @property
    def watched_files(self) -> int:
        return len(self._feeds)

    # -- the one watcher -------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled: wake on inotify (or the rescan timer) and fan out new lines."""
        if linux_mechanisms():
            self._inotify = Inotify()
        try:
            task_status.started()
            busy: set[Path] = set()
            while True:
                woken: set[Path] | None = None  # None: look at every feed
                if busy:
                    await anyio.lowlevel.checkpoint()
                    woken = set(busy)
                    if self._inotify is not None:
                        woken |= self._paths(self._inotify.read_watches())
                elif self._inotify is not None:
                    with anyio.move_on_after(RESCAN_S):
                        await anyio.wait_readable(self._inotify.fd)
                        woken = self._paths(self._inotify.read_watches())
                else:
                    await anyio.sleep(FALLBACK_POLL_S)
                busy = self._poll(woken)
        finally:
            inotify, self._inotify = self._inotify, None
            if inotify is not None:
                inotify.close()
            for feed in self._feeds.values():
                feed.wd = None
            self._by_wd.clear()

    def _paths(self, wds: set[int]) -> set[Path]:
        return {path for wd in wds for path in self._by_wd.get(wd, ())}

    def _poll(self, paths: set[Path] | None) -> set[Path]:
        busy = set()
        for path in list(self._feeds) if paths is None else paths:
            feed = self._feeds.get(path)
            if feed is None:
                continue
            lines, more = feed.cursor.read()
            if more:
                busy.add(path)
            for line in lines:
                frames: dict[str, dict[str, str]] = {}
                for mailbox, alias in list(feed.subscribers.values()):
                    frame = frames.get(alias)
                    if frame is None:
                        frame = frames[alias] = {"type": "log", "file": alias, "line": line}
                    mailbox.put(frame)
        return busy
