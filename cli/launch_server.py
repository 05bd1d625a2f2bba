"""The per-user launch server: the supervisor imported once, one fork per launch.

`cld`/`ocd` (`cli.launch_client`) connect to its unix socket (`launch.server_wire`) and hand
over the terminal's descriptors, argv, working folder, umask and environment. The server
forks; the child takes them over (descriptors onto 0/1/2, `chdir`, the environment
replaced, its own session) and runs exactly what a launch in process runs
(`cli.launchers.run_launcher`), then sends the exit code back. The parent only accepts the
next connection: it holds no launch state, so its crash or exit touches no running launch.

Why a fork server and not one long-lived supervisor for every slot: each launch stays its
own process with its own event loop, guardian, signal handlers and crash domain — the
cleanup guarantees, the watchdog and the tests of a launch in process hold unchanged —
while the ~0.3 s of imports and the interpreter start are paid once per server, not per
launch. The fork happens before any event loop or thread exists in the server.

It serves only its own user (the socket's folder is private, and `SO_PEERCRED` is checked),
only the code it imported (a request with another fingerprint gets `stale` and the server
exits) and exits after `LLM_DOCKER_LAUNCH_SERVER_IDLE` seconds (default one hour) without
requests. One server per installation, under a lock: a second one started meanwhile exits.

Run as `python -P -m cli.launch_server` (the client starts it).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from typing import Any

from launch import server_wire
from launch.file_lock import open_lock_file, take_lock

#: What a launch imports; loaded before the first fork so no launch pays for it.
PRELOAD = ("cli.launchers", "supervisor.launcher", "supervisor.gateway", "supervisor.supervise",
           "builder_api.config", "asyncssh", "anyio._backends._asyncio")
#: How long a connected client may take to send its request.
REQUEST_SECONDS = 5.0
#: How long a new server waits for the lock of one that is exiting.
LOCK_WAIT_SECONDS = 5.0
_CREDENTIALS = struct.Struct("3i")


def main() -> int:
    folder = server_wire.runtime_folder(os.environ)
    if folder is None:
        return 1
    os.chdir("/")
    try:
        lock = open_lock_file(server_wire.lock_path(folder))
    except OSError:
        return 1  # not a lock file of ours: no server (the client launches in process)
    if not take_lock(lock, LOCK_WAIT_SECONDS):
        return 0  # another server of this installation runs
    fingerprint = server_wire.code_fingerprint()  # before the imports: what they load is at least this new
    for module in PRELOAD:
        importlib.import_module(module)
    for number in (signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the launches
    path = server_wire.socket_path(folder)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(32)
    try:
        serve(listener, fingerprint, idle_seconds())
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        listener.close()
    return 0


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(server_wire.IDLE_SWITCH, server_wire.DEFAULT_IDLE_SECONDS)))
    except ValueError:
        return server_wire.DEFAULT_IDLE_SECONDS


def serve(listener: socket.socket, fingerprint: str, idle: float) -> None:
    """Accept launches until `idle` seconds pass without one, or a client runs other code."""
    while select.select([listener], [], [], idle)[0]:
        connection, _ = listener.accept()
        with connection:
            if not _serve_one(connection, listener, fingerprint):
                return


def _serve_one(connection: socket.socket, listener: socket.socket, fingerprint: str) -> bool:
    """Fork a launch for one request; False when the client runs other code (we must go)."""
    connection.settimeout(REQUEST_SECONDS)
    _, uid, _ = _CREDENTIALS.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          _CREDENTIALS.size))
    if uid != os.getuid():
        return True
    try:
        request, descriptors = _receive_request(connection)
    except (OSError, ValueError):
        return True
    try:
        if request.get("fingerprint") != fingerprint or len(descriptors) != 3:
            with contextlib.suppress(OSError):
                connection.sendall(server_wire.encode({"stale": True}))
            return False
        if os.fork() == 0:
            listener.close()
            code = 1
            try:
                code = run_launch(connection, descriptors, request)
            finally:
                os._exit(code)
        return True
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def _receive_request(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, descriptors, _, _ = socket.recv_fds(connection, 65536, 3)
    try:
        request = server_wire.read_message(connection, data)
        if request is None:
            raise ValueError("request cut short")
        return request, descriptors
    except BaseException:
        for descriptor in descriptors:
            os.close(descriptor)
        raise


def run_launch(connection: socket.socket, descriptors: list[int], request: dict[str, Any]) -> int:
    """In the forked child: become the client's launch, run it, report its exit code."""
    os.setsid()
    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
    for number in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _reopen_standard_streams()
    connection.settimeout(None)
    launcher = str(request.get("launcher"))
    argv = [str(word) for word in request.get("argv", [])]
    try:
        os.umask(int(request.get("umask", 0o022)))
        os.chdir(str(request.get("cwd")))
    except (OSError, ValueError) as error:
        print(f"{launcher}: cannot enter the working folder: {error}", file=sys.stderr)
        return _report(connection, 1)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request.get("environ", {})).items()})
    os.environ[server_wire.SERVED_MARK] = "1"
    sys.argv = [launcher, *argv]
    connection.sendall(server_wire.encode({"pid": os.getpid()}))
    threading.Thread(target=_hang_up_when_client_goes, args=(connection,), daemon=True).start()
    try:
        code = _run(launcher, argv)
    except KeyboardInterrupt:
        code = 130
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 1
    except Exception:  # noqa: BLE001 — a bug: its traceback, as in process, then its code to the client
        traceback.print_exc()
        code = 1
    return _report(connection, code)


def _run(launcher: str, argv: list[str]) -> int:
    """`cld`/`ocd` with `argv`, or `llm-docker supervise` (`cli.launch_client.admin_main`)."""
    if launcher == "llm-docker":
        if argv[:1] != ["supervise"]:
            print("llm-docker: only `supervise` is served; run the command again", file=sys.stderr)
            return 2
        from cli.admin import main as admin_main

        admin_main(argv)
        return 0
    from cli.launchers import run_launcher
    from launch.tools import Tool

    return run_launcher(Tool.CLAUDE if launcher == "cld" else Tool.OPENCODE, argv)


def _report(connection: socket.socket, code: int) -> int:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    with contextlib.suppress(OSError):
        connection.sendall(server_wire.encode({"exit": code}))
    return code


def _hang_up_when_client_goes(connection: socket.socket) -> None:
    """The client sends nothing after its request: the connection's end means it is gone
    (killed, even with SIGKILL) — to the launch that is a closed terminal. A thread, not a
    task: it must work before the launch's event loop exists and after it ended, and it
    lives exactly as long as this process."""
    with contextlib.suppress(OSError):
        while connection.recv(4096):
            pass
    os.kill(os.getpid(), signal.SIGHUP)


def _reopen_standard_streams() -> None:
    """Text streams over the client's descriptors, line-buffered where they are terminals,
    as Python would have set them up had the launch started in this process."""
    def buffering(fd: int) -> int:
        return 1 if os.isatty(fd) else -1

    sys.stdin = open(0, "r", buffering=buffering(0), encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", buffering=buffering(1), encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=buffering(2), encoding="utf-8", errors="backslashreplace",
                      closefd=False)


if __name__ == "__main__":
    sys.exit(main())

