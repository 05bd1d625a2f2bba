"""`supervisor.proxy.pump_input`: piped stdin of every kind is forwarded until EOF, and a
source that never ends can always be abandoned at once (asyncio and trio)."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from pathlib import Path

import anyio
import pytest

from supervisor.proxy import pump_input

pytestmark = pytest.mark.anyio


async def collect(fd: int, timeout: float = 5) -> bytes:
    received = bytearray()

    async def send(data: bytes) -> None:
        received.extend(data)

    with anyio.fail_after(timeout):
        await pump_input(fd, send)
    return bytes(received)


async def test_pipe_until_eof() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"one\ntwo\n")
    os.close(write_end)
    try:
        assert await collect(read_end) == b"one\ntwo\n"
    finally:
        os.close(read_end)


async def test_regular_file_and_dev_null(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"x" * 200_000)
    with path.open("rb") as handle:
        assert await collect(handle.fileno()) == b"x" * 200_000
    with open(os.devnull, "rb") as handle:
        assert await collect(handle.fileno()) == b""


async def test_closed_descriptor() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    assert await collect(read_end) == b""


@pytest.mark.parametrize("kind", ["pipe", "fifo", "socket"])
async def test_a_source_that_stays_open_is_abandoned_at_once(kind: str, tmp_path: Path) -> None:
    """The writer keeps its end open forever (`(sleep 600) | cld`): cancelling returns
    within a bound, no worker thread stays blocked in read(), and the descriptor's
    flags are what they were."""
    if kind == "pipe":
        read_end, write_end = os.pipe()
    elif kind == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        write_end = os.open(fifo, os.O_WRONLY)
        fcntl.fcntl(read_end, fcntl.F_SETFL, fcntl.fcntl(read_end, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    else:
        ours, theirs = socket.socketpair()
        read_end, write_end = ours.detach(), theirs.detach()
    flags = fcntl.fcntl(read_end, fcntl.F_GETFL)
    threads = threading.active_count()
    received = bytearray()

    async def send(data: bytes) -> None:
        received.extend(data)

    try:
        os.write(write_end, b"hello\n")
        async with anyio.create_task_group() as group:
            group.start_soon(pump_input, read_end, send)
            with anyio.fail_after(5):
                while bytes(received) != b"hello\n":
                    await anyio.sleep(0.01)
            started = anyio.current_time()
            group.cancel_scope.cancel()
        assert anyio.current_time() - started < 1
        assert threading.active_count() <= threads  # nothing left blocked in read()
        assert fcntl.fcntl(read_end, fcntl.F_GETFL) == flags
    finally:
        os.close(read_end)
        os.close(write_end)
