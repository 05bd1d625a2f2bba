"""Reading files the agent can write — without trusting a single byte of them.

The agent writes its events file and the tools' session data (under `$LLM_DOCKER_HOME`,
mounted into its container), and it is treated as hostile. Host code that reads those
paths goes through this module, which:

* never follows a symlink the agent could have planted (`O_NOFOLLOW` on every component
  below the mount point; `lstat`-style checks for listings) — a link to `~/.ssh/...` or
  `/dev/zero` is refused, not read;
* refuses anything but a regular file, checked with `fstat` on the descriptor it opened
  (no race between the check and the read), and opens with `O_NONBLOCK` so that a FIFO
  can never block the `open` itself;
* reads a bounded number of bytes (the tail of the events file), and lists a bounded
  number of directory entries;
* runs the blocking work in a daemon thread with a time bound (`run_bounded`): a thread
  stuck on something we did not foresee is abandoned, and being a daemon it never keeps
  the process from exiting.

Backend-neutral (anyio only), so it is tested on asyncio and trio.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")

#: The events file is read from its end: the last session line is what counts.
TAIL_BYTES = 64 * 1024
#: A session folder is listed up to this many entries (an agent can create millions).
MAX_ENTRIES = 10_000

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Refused(Exception):
    """An agent-writable path that is not what it must be (a symlink, a FIFO, a device...).
    The message completes "the events file ..." / "<path> ...", e.g. "is a symlink"."""


def describe(mode: int) -> str:
    """What kind of file `mode` is, for a one-line message."""
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "unknown kind"


def _refuse_symlink(error: OSError, message: str) -> None:
    # O_NOFOLLOW on a symlink: ELOOP on Linux and macOS (EMLINK on some BSDs).
    if error.errno in (errno.ELOOP, errno.EMLINK):
        raise Refused(message) from None


def open_directory(path: Path, *, trusted: Path) -> int:
    """A descriptor of `path`, opening every component below `trusted` (the mount source,
    which the agent cannot replace) without following symlinks. FileNotFoundError if a
    component is missing; Refused if one is a symlink or not a directory."""
    relative = path.relative_to(trusted)
    fd = os.open(trusted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in relative.parts:
            try:
                inner = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                # O_DIRECTORY wins over O_NOFOLLOW on Linux: say which it was (lstat)
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                raise Refused(f"{part} is {'a symlink' if stat.S_ISLNK(mode) else describe(mode)}") from None
            except OSError as error:
                _refuse_symlink(error, f"{part} is a symlink")
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_tail(path: Path, limit: int = TAIL_BYTES, *, dir_fd: int | None = None) -> tuple[bytes, int]:
    """The last `limit` bytes of the regular file `path` (its name only, if `dir_fd` is
    given), and its size. FileNotFoundError if missing; Refused unless a regular file."""
    try:
        fd = os.open(path if dir_fd is None else path.name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        _refuse_symlink(error, "is a symlink")
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"is not a regular file ({describe(info.st_mode)})")
        start = max(0, info.st_size - limit)
        chunks: list[bytes] = []
        remaining = min(limit, info.st_size)
        while remaining > 0:
            chunk = os.pread(fd, remaining, start)
            if not chunk:
                break
            chunks.append(chunk)
            start += len(chunk)
            remaining -= len(chunk)
        return b"".join(chunks), info.st_size
    finally:
        os.close(fd)


def regular_entries(fd: int, suffix: str, limit: int = MAX_ENTRIES) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of the regular files ending in `suffix` in the directory `fd`, from at
    most `limit` entries; symlinks and everything else are skipped, never followed."""
    with os.scandir(fd) as entries:
        for count, entry in enumerate(entries):
            if count >= limit:
                return
            if not entry.name.endswith(suffix):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield entry.name, info


def regular_or_missing(name: str, dir_fd: int) -> bool:
    """True if `name` (in the directory `dir_fd`) is a regular file, False if missing;
    Refused if it is anything else (a symlink included: checked with lstat)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"{name} is {'a symlink' if stat.S_ISLNK(info.st_mode) else describe(info.st_mode)}")
    return True


async def run_bounded(function: Callable[[], T], seconds: float) -> T:
    """Run the blocking `function` in a daemon thread and return its result; TimeoutError
    after `seconds`. The thread is then abandoned: it cannot block the event loop, and as a
    daemon it cannot keep the process alive (anyio's own worker threads would)."""
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    values: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            values.append(function())
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            errors.append(error)
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except Exception:  # noqa: BLE001 - the loop is gone: nobody waits any more
            pass

    threading.Thread(target=work, name="llm-docker untrusted read", daemon=True).start()
    with anyio.fail_after(seconds):
        await done.wait()
    if errors:
        raise errors[0]
    return values[0]
