"""The terminal proxy's building blocks, shared by a launch's own terminal and by
`llm-docker attach`: copy the attach stream to stdout/stderr, read the terminal, and keep
the container's TTY the size of the window.
"""

from __future__ import annotations

import errno
import os
import signal

import aiodocker
import anyio
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from supervisor.terminal import window_size

READ_SIZE = 65536


async def pump_output(stream: Stream) -> None:
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


async def follow_window_size(container: DockerContainer, fd: int) -> None:
    """Resize the container's TTY now and on every SIGWINCH."""
    with anyio.open_signal_receiver(signal.SIGWINCH) as changes:
        await resize(container, fd)
        async for _ in changes:
            await resize(container, fd)


async def resize(container: DockerContainer, fd: int) -> None:
    size = window_size(fd)
    if size is not None:
        try:
            await container.resize(h=size[0], w=size[1])
        except aiodocker.DockerError:
            pass  # the container may be exiting


