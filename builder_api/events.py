"""The event feed: JSON lines appended to the events file, and pushed live to every
subscriber (WebSocket sessions) through a bounded mailbox that drops its oldest frame
instead of ever blocking the producer (docs/upstream.md#api-slow-websocket).

The events file may sit inside the project (`[events].path`), where the agent can swap it
for a symlink or a FIFO: every read, append and rotation goes through `safefs` (no symlink
followed, regular files only, never blocking). Records are JSON lines, so no value of a
request ever becomes a line of its own.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from builder_api.config import EventSettings
from builder_api.safefs import READ, FileRefused, open_file, open_folder

ROTATION_NEWLINE_SEARCH = 256 * 1024
MAILBOX_FRAMES = 512
#: `query` reads at most this much of the events file's end, skips longer lines, and answers
#: with at most this many bytes of records (the newest).
QUERY_SCAN_BYTES = 64 << 20
MAX_EVENT_LINE_BYTES = 64 << 10
QUERY_ANSWER_BYTES = 1 << 20
APPEND_READ = os.O_RDWR | os.O_APPEND | os.O_CREAT  # read too: a rotation reads what it keeps


class Mailbox:
    """A bounded queue for one consumer: `put` never blocks (the oldest frame is dropped
    and counted when full); `get` waits. Backend-neutral (anyio)."""

    def __init__(self, capacity: int = MAILBOX_FRAMES) -> None:
        self._frames: collections.deque[Any] = collections.deque(maxlen=capacity)
        self._ready = anyio.Event()
        self.dropped = 0

    def put(self, frame: Any) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._ready.set()

    async def get(self) -> Any:
        while not self._frames:
            await self._ready.wait()
            if not self._frames:
                self._ready = anyio.Event()
        frame = self._frames.popleft()
        if not self._frames:
            self._ready = anyio.Event()
        return frame

    def __len__(self) -> int:
        return len(self._frames)


def _default(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


class EventStore:
    def __init__(self, settings: EventSettings, root: Callable[[], Path | None] = lambda: None) -> None:
        """`root`: the project root, the anchor of an events file inside the project."""
        self.settings = settings
        self._root = root
        self._subscribers: set[Mailbox] = set()

    def append(self, event_type: str, payload: dict[str, Any] | None = None, *, persist: bool = True) -> dict[str, Any]:
        record = {"ts": time.time(), "type": event_type}
        record.update({k: v for k, v in (payload or {}).items() if k not in ("ts", "type")})
        if persist and self.settings.path is not None:
            self._write(json.dumps(record, ensure_ascii=False, default=_default) + "\n")
        frame = {"type": "event", "record": record}
        for mailbox in list(self._subscribers):
            mailbox.put(frame)
        return record

    def _write(self, line: str) -> None:
        path = self.settings.path
        assert path is not None
        data = line.encode()
        try:
            descriptor = open_file(path, self._root(), APPEND_READ, 0o600, make_folders=True)
            try:
                if os.fstat(descriptor).st_size + len(data) > self.settings.max_bytes:
                    self._rotate(path, descriptor)
                os.write(descriptor, data)
            finally:
                os.close(descriptor)
        except OSError:
            pass  # the feed must never take the API down (a refused file included)

    def _rotate(self, path: Path, descriptor: int) -> None:
        """Drop the oldest `drop_bytes` (whole lines): the rest is written to a new file that
        atomically replaces the old one — created and renamed inside the folder's descriptor,
        so no symlink on the way is followed. `descriptor` then appends to the new file."""
        content = os.pread(descriptor, self.settings.max_bytes + (1 << 20), 0)
        cut = min(self.settings.drop_bytes, len(content))
        newline = content.find(b"\n", cut, cut + ROTATION_NEWLINE_SEARCH)
        cut = newline + 1 if newline >= 0 else cut
        folder = open_folder(path.parent, self._root())
        temporary = path.name + ".rotating"
        try:
            try:
                os.unlink(temporary, dir_fd=folder)
            except FileNotFoundError:
                pass
            fresh = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                            dir_fd=folder)
            try:
                os.write(fresh, content[cut:])
                os.rename(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)  # atomic
                os.dup2(fresh, descriptor)
                os.lseek(descriptor, 0, os.SEEK_END)
            finally:
                os.close(fresh)
        finally:
            os.close(folder)

    @contextmanager
    def subscribe(self, mailbox: Mailbox) -> Iterator[Mailbox]:
        self._subscribers.add(mailbox)
        try:
            yield mailbox
        finally:
            self._subscribers.discard(mailbox)

    def query(self, *, event_type: str | None = None, since: float | None = None, n: int = 200,
              pid: int | None = None) -> dict[str, Any]:
        n = max(1, min(10_000, n))
        path = self.settings.path
        empty: dict[str, Any] = {"events": [], "count": 0, "total": 0}
        if path is None:
            return empty
        try:
            descriptor = open_file(path, self._root(), READ)
        except (OSError, FileRefused):
            return empty
        kept: collections.deque[tuple[dict[str, Any], int]] = collections.deque(maxlen=n)
        kept_bytes = total = 0
        with os.fdopen(descriptor, "rb") as handle:
            # the file may be the agent's (a sparse terabyte, one endless line): only its last
            # QUERY_SCAN_BYTES are read, lines longer than MAX_EVENT_LINE_BYTES are skipped,
            # and the answer keeps the newest records within QUERY_ANSWER_BYTES
            size = os.fstat(handle.fileno()).st_size
            if size > QUERY_SCAN_BYTES:
                handle.seek(size - QUERY_SCAN_BYTES)
                handle.readline(MAX_EVENT_LINE_BYTES)  # the cut first line
            budget = QUERY_SCAN_BYTES
            while budget > 0 and (raw := handle.readline(min(MAX_EVENT_LINE_BYTES + 1, budget))):
                budget -= len(raw)
                if not raw.endswith(b"\n") and len(raw) > MAX_EVENT_LINE_BYTES:
                    continue  # the rest of an over-long line follows as more reads: none parse
                total += 1
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue  # upstream crashed the handler here
                if event_type is not None and record.get("type") != event_type:
                    continue
                if since is not None and not (isinstance(record.get("ts"), (int, float)) and record["ts"] >= since):
                    continue
                if pid is not None and record.get("pid") != pid:
                    continue
                if len(kept) == kept.maxlen:
                    kept_bytes -= kept[0][1]
                kept.append((record, len(raw)))
                kept_bytes += len(raw)
                while kept_bytes > QUERY_ANSWER_BYTES:
                    kept_bytes -= kept.popleft()[1]
        return {"events": [record for record, _ in kept], "count": len(kept), "total": total}
