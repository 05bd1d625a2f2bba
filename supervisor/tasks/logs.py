"""The logs task: append the JSON log lines to `$LLM_DOCKER_HOME/logs/llm-docker.log`.

Rotation by size (`LOG_MAX_KILOBYTES`, 0 disables the file) keeps numbered backups
`.1` … `.5`. Several launchers share the file, so each batch is written and rotated under
an exclusive `flock` — upstream's rotation raced (docs/upstream.md#log-rotation).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from supervisor.context import Supervisor

NAME = "logs"
LOG_FILE = "logs/llm-docker.log"
BACKUPS = 5


async def run(supervisor: Supervisor) -> None:
    receive = supervisor.log_lines
    if receive is None:
        return
    limit = supervisor.plan.config.log_max_kilobytes * 1024
    path = supervisor.state_home / LOG_FILE
    try:
        async for line in receive:
            batch = [line, *_drain(receive)]
            with anyio.CancelScope(shield=True):  # lines taken from the stream must reach the file
                await anyio.to_thread.run_sync(append_lines, path, batch, limit)
    finally:
        with anyio.CancelScope(shield=True):
            rest = _drain(receive)
            if rest:
                await anyio.to_thread.run_sync(append_lines, path, rest, limit)


def _drain(receive: MemoryObjectReceiveStream[str]) -> list[str]:
    lines = []
    while True:
        try:
            lines.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return lines


def append_lines(path: Path, lines: list[str], limit: int) -> None:
    """Append under the lock, rotating first when the file is over `limit` bytes."""
    if limit <= 0 or not lines:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists() and path.stat().st_size >= limit:
                rotate(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write("".join(f"{line}\n" for line in lines))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def rotate(path: Path) -> None:
    for number in range(BACKUPS - 1, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{number + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))
