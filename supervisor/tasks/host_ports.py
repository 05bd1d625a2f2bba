"""The HOST_PORTS task: host services the policy grants, and nothing else of the host.

For each granted port of each slot, the supervisor listens on a unix socket in the slot's
gateway folder (`$LLM_DOCKER_HOME/gateways/<gateway>/ports/PORT.sock`, mounted into the
gateway only) and relays every connection to `127.0.0.1:PORT` on the host. The gateway's
socat listens on `host.docker.internal:PORT` inside the cage's namespace and connects to
that socket. So a service bound to the host's loopback is reachable from the cage on
exactly the granted ports, and the host gains no listening TCP port at all — nothing is
exposed to other containers or the LAN (a forwarder on the bridge gateway would be).
The relays live in the supervisor's task group and end with the slot.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.abc import ByteStream, SocketListener

from launch.portability import linux_mechanisms
from supervisor.context import SlotRun, Supervisor

NAME = "host_ports"
HOST_LOOPBACK = "127.0.0.1"
BUFFER = 65536
#: The longest unix socket path macOS can bind: its `sun_path` holds 104 bytes, the NUL included.
MAX_PORTABLE_SOCKET_PATH = 103


async def run(supervisor: Supervisor) -> None:
    await supervisor.for_each_slot(serve_slot)


async def serve_slot(supervisor: Supervisor, slot: SlotRun) -> None:
    gateway = slot.spec.gateway
    if gateway is None or gateway.ports_folder is None:
        slot.host_ports_ready.set()
        return
    folder = gateway.ports_folder
    listeners: list[tuple[int, SocketListener]] = []
    try:
        try:
            await anyio.to_thread.run_sync(_prepare, folder)
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                for port in gateway.policy.host_ports:
                    listeners.append((port, await listen(folder, descriptor, port)))
            finally:
                os.close(descriptor)
        except OSError as error:
            slot.host_ports_error = f"HOST_PORTS: cannot listen in {folder}: {error.strerror or error}"
            return
        finally:
            slot.host_ports_ready.set()
        async with anyio.create_task_group() as group:
            for port, listener in listeners:
                group.start_soon(listener.serve, _relay_to(supervisor, port))
            await slot.container_gone.wait()
            group.cancel_scope.cancel()
    finally:
        for _, listener in listeners:
            with anyio.CancelScope(shield=True):
                await listener.aclose()


async def listen(folder: Path, descriptor: int, port: int) -> SocketListener:
    """The listening socket `PORT.sock` in `folder` (open as `descriptor`), open to the
    gateway. (The gateway's socat runs as its root, without DAC_OVERRIDE: it needs o+w;
    the folder is inside the user's 0700 state home, so no other host user gets in.)"""
    listener = await anyio.create_unix_listener(socket_path(folder, descriptor, port))
    try:
        os.chmod(f"{port}.sock", 0o666, dir_fd=descriptor)  # in the folder we opened, whatever its path
    except BaseException:
        with anyio.CancelScope(shield=True):
            await listener.aclose()
        raise
    return listener


def socket_path(folder: Path, descriptor: int, port: int) -> Path:
    """Where `PORT.sock` is bound. With Linux's mechanisms, through the folder's descriptor
    (`/proc/self/fd/N/PORT.sock`: short whatever `$LLM_DOCKER_HOME` is, and exactly the
    folder opened without following a symlink). Elsewhere — macOS, and Linux under the test
    switch of `launch.portability` — the plain path, which must fit macOS's `sun_path`:
    refused (one clear error) when it does not, never truncated."""
    if linux_mechanisms():
        return Path(f"/proc/self/fd/{descriptor}/{port}.sock")
    path = folder / f"{port}.sock"
    length = len(os.fsencode(path))
    if length > MAX_PORTABLE_SOCKET_PATH:
        raise OSError(errno.ENAMETOOLONG, f"the socket path {path} has {length} bytes, over macOS's limit of "
                                          f"{MAX_PORTABLE_SOCKET_PATH}: use a shorter LLM_DOCKER_HOME")
    return path


def _prepare(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.parent.chmod(0o755)
    folder.chmod(0o755)


def _relay_to(supervisor: Supervisor, port: int) -> Callable[[ByteStream], Awaitable[None]]:
    async def handle(client: ByteStream) -> None:
        async with client:
            try:
                service = await anyio.connect_tcp(HOST_LOOPBACK, port)
            except OSError as error:
                supervisor.log.info("host-port-unreachable", port=port, error=str(error))
                return
            async with service, anyio.create_task_group() as group:
                group.start_soon(_pump, client, service)
                group.start_soon(_pump, service, client)

    return handle


async def _pump(source: ByteStream, sink: ByteStream) -> None:
    """Copy one direction; at its end, half-close the other side so the peer sees EOF."""
    try:
        async for data in source:
            await sink.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    try:
        await sink.send_eof()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, NotImplementedError):
        pass
