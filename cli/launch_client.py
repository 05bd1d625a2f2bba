"""`cld` and `ocd` as thin clients of the per-user launch server (`cli.launch_server`).

A launch in process pays for Python's imports of the whole supervisor (aiodocker, aiohttp,
asyncssh, structlog: ~0.3 s of CPU) before its container can start. A server that imported
them once forks a fresh supervisor per launch instead: this client hands it the terminal
(stdin, stdout and stderr, as descriptors over the unix socket), the arguments, the working
folder, umask and environment, then only relays signals and waits for the exit code. The
forked supervisor is the launch: its own process, its own event loop, its own guardian —
the same code and guarantees as a launch in process.

* No server yet, or one running other code (`stale`), or no private socket folder: this
  launch runs in process, as before, and a server is started beside it for the next one. A
  launch in the terminal's background (`cld &`) always runs in process (job control).
* The client forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGWINCH to the supervisor; when
  its own parent (the shell) dies it sends SIGHUP, what a closed terminal sends.
* The client killed (even SIGKILL): the supervisor sees the socket's end, which it takes as a
  hang-up — saves the slots and removes the containers. The supervisor killed: its guardian
  cleans up; the client says so in one line and exits 1. The server killed: running
  launches do not notice (each is its own process).

Stdlib only, plus `launch.server_wire`: importing anything else here would cost what the
server saves. `LLM_DOCKER_LAUNCH_SERVER=off` launches in process without a server.
"""

from __future__ import annotations

import array
import contextlib
import os
import select
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

from launch import server_wire
from launch.python_command import own_module

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH)
#: The admin command a server runs too (`supervise` only: `admin_main`).
SERVED_ADMIN = "llm-docker"
#: Exit code when the supervisor ended without telling its code (it crashed or was killed).
LOST = 1
CONNECT_TIMEOUT = 2.0


def cld_main() -> None:
    _main("cld")


def ocd_main() -> None:
    _main("ocd")


def _main(launcher: str) -> None:
    argv = sys.argv[1:]
    code = served(launcher, argv)
    if code is None:
        _in_process(launcher)
    else:
        _exit(code)


def admin_main() -> None:
    """`llm-docker`: `supervise` is a launch like `cld N`, served the same way; every other
    command runs in process (`cli.admin`)."""
    argv = sys.argv[1:]
    if argv[:1] == ["supervise"] and not {"-h", "--help"} & set(argv):
        code = served(SERVED_ADMIN, argv)
        if code is not None:
            _exit(code)
    from cli import admin

    admin.main()


def _in_process(launcher: str) -> None:
    from cli import launchers

    (launchers.cld_main if launcher == "cld" else launchers.ocd_main)()


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def served(launcher: str, argv: list[str]) -> int | None:
    """The launch's exit code from a warm server, or None: launch in process (a server is
    started for the next launch where none answered)."""
    environ = os.environ
    if not server_wire.server_enabled(environ) or not _standard_streams_open() or not in_foreground():
        return None
    folder = server_wire.runtime_folder(environ)
    if folder is None:
        return None
    connection = _connect(server_wire.socket_path(folder))
    if connection is None:
        start_server()
        return None
    with connection:
        try:
            request = _request(launcher, argv)
        except OSError:
            return None  # no working folder, say: the launch in process says so in one line
        try:
            connection.sendmsg([server_wire.encode(request)],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
            first = server_wire.read_message(connection)
        except (OSError, ValueError):
            return None  # the server went away before it forked: nothing ran yet
        if first is None or "pid" not in first:
            if first is not None and first.get("stale"):
                start_server()
            return None
        return _wait(connection, int(str(first["pid"])), launcher)


def _standard_streams_open() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def in_foreground() -> bool:
    """Not a terminal, or this process in its terminal's foreground. A launch started in the
    background (`cld &`) runs in process: the kernel's job control stops it when it reads the
    terminal, which a forked launch outside the terminal's session would escape — it would
    read the keys typed to the shell."""
    if not os.isatty(0):
        return True
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:  # a terminal, but not this process's controlling one
        return False


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(CONNECT_TIMEOUT)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        return None
    connection.settimeout(None)
    return connection


def _request(launcher: str, argv: list[str]) -> dict[str, object]:
    umask = os.umask(0)
    os.umask(umask)
    return {"fingerprint": server_wire.code_fingerprint(), "launcher": launcher, "argv": argv,
            "cwd": os.getcwd(), "environ": dict(os.environ), "umask": umask}


def _wait(connection: socket.socket, pid: int, launcher: str) -> int:
    """Relay signals to the supervisor `pid` until it reports its exit code."""
    target = _pidfd(pid)

    def forward(number: int, _frame: FrameType | None) -> None:
        _signal(target, pid, number)

    for number in FORWARDED:
        signal.signal(number, forward)
    parent = _pidfd(os.getppid()) if os.getppid() > 1 else None
    watched = [connection] + ([parent] if parent is not None else [])
    while True:
        ready, _, _ = select.select(watched, [], [])
        if parent is not None and parent in ready:
            _signal(target, pid, signal.SIGHUP)  # the shell is gone: what a closed terminal sends
            watched.remove(parent)
            parent = None
        if connection in ready:
            try:
                message = server_wire.read_message(connection)
            except (OSError, ValueError):
                message = None
            if message is None:
                print(f"{launcher}: the supervisor ended without an exit code (crashed or killed); "
                      "its guardian removes what it started", file=sys.stderr)
                return LOST
            if "exit" in message:
                return int(str(message["exit"]))


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _signal(pidfd: int | None, pid: int, number: int) -> None:
    """Through the pidfd where there is one: a reused pid is never signalled."""
    with contextlib.suppress(OSError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, number)
        else:
            os.kill(pid, number)


#: What the server itself needs from the first launch's environment; every launch brings its
#: own. Nothing else (API keys, tokens) is kept in the long-lived process.
SERVER_ENVIRONMENT = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR",
                      server_wire.IDLE_SWITCH)


def _server_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in SERVER_ENVIRONMENT if name in os.environ}


def start_server() -> None:
    """Start the launch server beside this launch, in its own session, detached from the
    terminal. It is a service like tmux's server, not a task of this launch: it outlives it
    and ends on its own after `LLM_DOCKER_LAUNCH_SERVER_IDLE` seconds without requests."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.posix_spawn(sys.executable, own_module("cli.launch_server"), _server_environment(),
                           file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                                         (os.POSIX_SPAWN_DUP2, devnull, 2)],
                           setsid=True)
        finally:
            os.close(devnull)
