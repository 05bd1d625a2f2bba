"""The terminal proxy's building blocks, shared by a launch's own terminal and by
`llm-docker attach`: copy the attach stream to stdout/stderr, read the terminal, and keep
the container's TTY the size of the window.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat
from collections.abc import Awaitable, Callable, Iterator

import anyio

from engine.containers import Container
from engine.errors import EngineError
from engine.streams import AttachStream
from supervisor.terminal import window_size

READ_SIZE = 65536


async def pump_output(stream: AttachStream) -> None:
    broken: set[int] = set()
    while (message := await stream.read_out()) is not None:
        fd = 2 if message.stream == 2 else 1
        if fd not in broken and not write_all(fd, message.data):
            broken.add(fd)  # reader went away (`| head`): keep draining so the tool is not blocked


def write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError:  # EPIPE (reader gone), EIO (terminal hung up)
            return False
        view = view[written:]
    return True


async def read_terminal(fd: int) -> bytes:
    """The next keystrokes from the terminal; b"" when it is gone (EOF, EIO: hung up)."""
    await anyio.wait_readable(fd)
    try:
        return os.read(fd, READ_SIZE)
    except OSError as error:
        if error.errno not in (errno.EIO, errno.EBADF):
            raise
        return b""


async def pump_input(fd: int, send: Callable[[bytes], Awaitable[None]]) -> None:
    """Pass everything read from `fd` (piped stdin) to `send` until EOF; return at EOF, or
    at once when `fd` is closed or unreadable.

    No thread ever blocks in `read()` on something that may never end: a pipe, FIFO,
    socket or terminal is read non-blocking when the event loop says it is readable (its
    flags are restored afterwards — the open file may be shared with other processes), so
    cancelling this returns at once. Only what cannot be polled (a regular file,
    /dev/null) is read in a worker thread: such a read always returns promptly. A thread
    blocked in `read(0)` on a pipe that stays open kept the launcher alive after its
    container was gone: the interpreter joins its worker threads before it exits.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return  # stdin closed
    if not stat.S_ISREG(mode):
        try:
            with _nonblocking(fd):
                while data := await _read_when_readable(fd):
                    await send(data)
            return
        except PermissionError:
            pass  # the kernel cannot poll it (/dev/null, some devices): its reads do not block
    while data := await _read_in_thread(fd):
        await send(data)


@contextlib.contextmanager
def _nonblocking(fd: int) -> Iterator[None]:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)


async def _read_when_readable(fd: int) -> bytes:
    while True:
        await anyio.wait_readable(fd)
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            continue  # someone else read it first
        except OSError as error:
            if error.errno in (errno.EIO, errno.EBADF, errno.ECONNRESET):
                return b""
            raise


async def _read_in_thread(fd: int) -> bytes:
    try:
        return await anyio.to_thread.run_sync(os.read, fd, READ_SIZE)
    except OSError:
        return b""


async def follow_window_size(container: Container, fd: int) -> None:
    """Resize the container's TTY now and on every SIGWINCH."""
    with anyio.open_signal_receiver(signal.SIGWINCH) as changes:
        await resize(container, fd)
        async for _ in changes:
            await resize(container, fd)


async def resize(container: Container, fd: int) -> None:
    size = window_size(fd)
    if size is not None:
        try:
            await container.resize(rows=size[0], columns=size[1])
        except EngineError:
            pass  # the container may be exiting


