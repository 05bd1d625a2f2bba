"""Docker Desktop that is not running: start it for a launch, once, whoever asks.

A launch connects through `connect_for_launch`. When the engine does not answer and its
endpoint is Docker Desktop's socket (`~/.docker/run/docker.sock` on macOS — also behind
the `/var/run/docker.sock` symlink Desktop installs — and `~/.docker/desktop/docker.sock`
on Linux), or there is no endpoint at all but Desktop's folder exists, Desktop is started
(`open -a Docker` on macOS, `systemctl --user start docker-desktop` on Linux) and the
launch waits until the socket answers `GET /_ping`, saying so on stderr.

Concurrent launches (`cld 4`, several terminals) share ONE lock, `$LLM_DOCKER_HOME/
docker-desktop.lock` (`flock`): the launch that holds it starts Desktop; the others wait
for the lock and then find Desktop answering. Past the deadline the launch ends with one
line and exit 125.

Two waits poll, because nothing announces them: the lock (another process holds it) every
0.1 s, and Desktop's socket every 0.5 s — only while Desktop is starting.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import anyio

from engine import reach
from engine.client import Engine, connect
from engine.errors import EngineError
from launch.file_lock import acquire_lock, open_lock_file

__all__ = ["DESKTOP_SOCKETS", "START_SECONDS", "connect_for_launch", "desktop_socket", "ensure_desktop",
           "start_command"]

#: Desktop's engine sockets, relative to the home folder: macOS, then Linux.
DESKTOP_SOCKETS = (Path(".docker/run/docker.sock"), Path(".docker/desktop/docker.sock"))
LOCK_FILE = "docker-desktop.lock"
#: How long a launch waits for Desktop (its VM boots: tens of seconds on a laptop).
START_SECONDS = 120.0
PING_SECONDS = 0.5
#: How often the waiting launch says it still waits.
PROGRESS_SECONDS = 10.0

Progress = Callable[[str], None]


def start_command(platform: str) -> tuple[str, ...] | None:
    """How Docker Desktop is started on `platform` (None: not one Desktop runs on here)."""
    if platform == "darwin":
        return ("open", "-a", "Docker")
    if platform.startswith("linux"):
        return ("systemctl", "--user", "start", "docker-desktop")
    return None


def desktop_socket(endpoint: str | None, home: Path) -> Path | None:
    """Desktop's socket when `endpoint` is it (directly or through a symlink, as macOS's
    `/var/run/docker.sock`), or when there is no endpoint at all and Desktop's folder
    exists (installed, not running: it removes its socket when it quits); else None."""
    candidates = [home / relative for relative in DESKTOP_SOCKETS]
    if endpoint is None:
        return next((socket for socket in candidates if socket.parent.is_dir()), None)
    if not endpoint.startswith("unix://"):
        return None
    path = Path(endpoint.removeprefix("unix://"))
    for socket in candidates:
        if path == socket or Path(os.path.realpath(path)) == Path(os.path.realpath(socket)):
            return socket
    return None


async def connect_for_launch(state_home: Path, progress: Progress, *, timeout: float = START_SECONDS,
                             home: Path | None = None, platform: str = sys.platform) -> Engine:
    """`engine.client.connect`, starting Docker Desktop first when it is the engine and is
    down (see the module). Any other failure is `connect`'s own `EngineError` (one line: the
    endpoint, where it came from, what to do — `engine.reach`)."""
    try:
        return await connect()
    except EngineError as error:
        failure = error
    command = start_command(platform)
    endpoint = reach.resolve()
    socket = None if endpoint.problem else desktop_socket(endpoint.url, home or Path.home())
    if socket is None or command is None:
        raise failure
    await ensure_desktop(socket, command, state_home, progress, timeout=timeout)
    return await connect()


async def ensure_desktop(socket: Path, command: tuple[str, ...], state_home: Path, progress: Progress, *,
                         timeout: float = START_SECONDS) -> None:
    """Make Desktop's `socket` answer: under the lock, start it with `command` unless it
    answers already (another launch started it), then wait for it. `EngineError` (one
    line, exit 125) when it does not answer within `timeout` or `command` fails."""
    shown = " ".join(command)
    began = time.monotonic()
    try:
        with anyio.fail_after(timeout):
            async with _lock(state_home, lambda: progress("waiting for Docker Desktop, which another launch is "
                                                          "starting")):
                if await _answers(socket):
                    return
                progress(f"Docker Desktop is not running — starting it ({shown})")
                try:
                    result = await anyio.run_process(list(command), check=False, stdin=subprocess.DEVNULL)
                except OSError as error:
                    raise EngineError(f"could not start Docker Desktop: `{shown}` failed ({error.strerror or error})"
                                      ) from None
                if result.returncode != 0:
                    said = result.stderr.decode(errors="replace").strip().splitlines()
                    raise EngineError(f"could not start Docker Desktop: `{shown}` failed "
                                      f"({said[-1] if said else f'exit {result.returncode}'})")
                await _wait_for(socket, progress, began)
    except TimeoutError:
        raise EngineError(f"Docker Desktop did not answer within {timeout:.0f} s (started with `{shown}`) — "
                          "start Docker Desktop, then launch again") from None


async def _wait_for(socket: Path, progress: Progress, began: float) -> None:
    said = time.monotonic()
    while not await _answers(socket):
        await anyio.sleep(PING_SECONDS)
        if time.monotonic() - said >= PROGRESS_SECONDS:
            said = time.monotonic()
            progress(f"still waiting for Docker Desktop ({said - began:.0f} s)")
    progress(f"Docker Desktop is running ({time.monotonic() - began:.0f} s)")


async def _answers(socket: Path) -> bool:
    """`GET /_ping` on the socket answers 200 (a socket file alone proves nothing)."""
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket)),
                                         timeout=aiohttp.ClientTimeout(total=PING_SECONDS * 4)) as session, \
                session.get("http://docker/_ping") as reply:
            return reply.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


@contextlib.asynccontextmanager
async def _lock(state_home: Path, on_wait: Callable[[], None]) -> AsyncIterator[None]:
    """`flock` on `$LLM_DOCKER_HOME/docker-desktop.lock` (`launch.file_lock`: never through a
    symlink, a regular file only); `on_wait` once if another process holds it."""
    state_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = open_lock_file(state_home / LOCK_FILE)
    except OSError as error:
        raise EngineError(f"cannot lock {state_home / LOCK_FILE} ({error.strerror or error})") from None
    try:
        await acquire_lock(descriptor, None, anyio.sleep, on_wait)
        yield
    finally:
        os.close(descriptor)
