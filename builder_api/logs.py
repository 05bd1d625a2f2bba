"""Log aliases: tail a file by alias (§8), and follow new complete lines (§11.5)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from builder_api.watch import Inotify

BLOCK = 64 * 1024
FOLLOW_INTERVAL_S = 0.25


def tail(path: Path, n: int) -> str:
    n = max(1, min(10_000, n))
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= n:
                step = min(BLOCK, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-n:])


async def follow(path: Path) -> AsyncIterator[str]:
    """New complete lines appended after the call; restarts from 0 when the file shrinks
    (rotation, truncation). Woken by inotify on Linux, by a 0.25 s timer elsewhere."""
    offset = path.stat().st_size if path.exists() else 0
    pending = b""
    inotify = None
    if sys.platform == "linux":
        inotify = Inotify()
        inotify.watch(path.parent)
    try:
        while True:
            if inotify is not None:
                await anyio.wait_readable(inotify.fd)
                inotify.drain()
            else:
                await anyio.sleep(FOLLOW_INTERVAL_S)
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size < offset:
                offset, pending = 0, b""
            if size == offset:
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(size - offset)
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
    finally:
        if inotify is not None:
            inotify.close()
