"""Host-side lock files: one way to open them and one way to wait for their `flock`.

Every lock the launchers take on the host (the launch server's, the Docker Desktop start,
a tool's first initialisation and start spacing) is a file under a folder of ours. Opened
here with `O_NOFOLLOW` and `O_NONBLOCK` and checked to be a regular file, so a symlink or a
FIFO put in its place never redirects the lock nor blocks the launcher on `open`.

`flock` has no timeout of its own, and a blocking one would hold the event loop (or the
launch server) for as long as another process keeps the lock: waiters try it without
blocking and pause between tries, with a bound. The pause is the caller's — `time.sleep`
in the synchronous launch server, `anyio.sleep` in the supervisor — so planning stays free
of any event loop.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

#: How often a waiter tries the lock again.
POLL_SECONDS = 0.05


def open_lock_file(path: Path) -> int:
    """`path` opened read-write (created 0600), never through a symlink, and only if it is a
    regular file; OSError otherwise. Closing the descriptor releases its lock, also when the
    process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def try_lock(fd: int) -> bool:
    """Whether the exclusive lock on `fd` was free (and is now ours)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def take_lock(fd: int, wait: float, *, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Whether the lock was taken within `wait` seconds (synchronous: the launch server)."""
    deadline = time.monotonic() + wait
    while not try_lock(fd):
        if time.monotonic() >= deadline:
            return False
        sleep(POLL_SECONDS)
    return True


async def acquire_lock(fd: int, wait: float | None, sleep: Callable[[float], Awaitable[None]],
                       on_wait: Callable[[], None] | None = None) -> bool:
    """Whether the lock was taken within `wait` seconds (None: until it is), pausing with the
    event loop's `sleep`; `on_wait` is called once if another process holds it."""
    deadline = None if wait is None else time.monotonic() + wait
    while not try_lock(fd):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if on_wait is not None:
            on_wait()
            on_wait = None
        await sleep(POLL_SECONDS)
    return True
