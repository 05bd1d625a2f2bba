"""Serve one project's builder-api: build the state, run the queue worker and the HTTP
server (hypercorn) as tasks of ONE task group, and stop everything — build and runtime
process groups included — when the group is cancelled (the supervisor's exit, a signal).

`serve()` works on asyncio and trio; `llm-docker api` and the supervisor task call it.

The logs the API writes (build, runtime) live OUTSIDE the project unless the config's
`log_dir` says otherwise: under `$LLM_DOCKER_HOME/builder-api/<project>/logs/` (default
`~/.llm-docker`). Inside the project the agent could point them anywhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from hypercorn.config import Config as HypercornConfig

from builder_api.app import BuilderAPI
from builder_api.config import ProjectConfig
from builder_api.events import EventStore
from builder_api.queue import BuildQueue, ContainerLookup
from builder_api.reload import watch_config
from builder_api.runtime import Runtime


def logs_home(project: str, environ: Mapping[str, str] | None = None) -> Path:
    """`$LLM_DOCKER_HOME/builder-api/<project>/logs` (default home `~/.llm-docker`): the
    user's own folder, out of the agent's reach, for the logs the API writes."""
    environ = os.environ if environ is None else environ
    configured = environ.get("LLM_DOCKER_HOME", "").strip()
    home = Path(os.path.expanduser(configured)).absolute() if configured else Path.home() / ".llm-docker"
    return home / "builder-api" / project / "logs"


def build_api(config: ProjectConfig, *, find_container: ContainerLookup | None = None) -> BuilderAPI:
    holder: dict[str, BuilderAPI] = {}

    def root() -> Path:
        return holder["api"].config.root if "api" in holder else config.root

    events = EventStore(config.events, root)
    home = logs_home(config.name)
    build_log = config.log_aliases.get("build", home / "build.log")
    queue = BuildQueue(project=config.name, root=root, events=events,
                       build_log=build_log, max_pending=lambda: holder["api"].config.build.max_pending,
                       dedupe_window_s=lambda: holder["api"].config.build.dedupe_window_s,
                       find_container=find_container)
    runtime = Runtime(config.runtime, root, events, config.log_aliases.get("runtime", home / "runtime.log"))
    api = holder["api"] = BuilderAPI(config, events=events, queue=queue, runtime=runtime)
    return api


def listen(config: ProjectConfig, port: int | None = None) -> socket.socket:
    """The listening socket, made here so that port 0 (tests) reveals its real port and a
    bind failure is one clear error before anything starts."""
    family = socket.AF_INET6 if ":" in config.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.bind, config.port if port is None else port))
    except OSError as error:
        sock.close()
        where = f"{config.bind}:{config.port if port is None else port}"
        raise OSError(f"bind failed on {where}: {error.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(config: ProjectConfig, sock: socket.socket) -> HypercornConfig:
    settings = HypercornConfig()
    settings.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn owns (and closes) the duplicate
    settings.include_server_header = False  # ours is builder-api/0.1
    settings.keep_alive_timeout = float(config.security.request_timeout_s)
    settings.read_timeout = config.security.request_timeout_s
    settings.h11_max_incomplete_size = 64 * 1024
    settings.websocket_max_message_size = 1 << 20
    settings.graceful_timeout = 1.0
    settings.accesslog = None
    settings.errorlog = None
    return settings


async def serve(api: BuilderAPI, *, port: int | None = None,
                task_status: TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled; `task_status.started()` reports the bound address.

    On cancellation: the queue worker stops its running job's process group, the runtime
    is stopped, and the HTTP server shuts down gracefully (it runs shielded, and ends when
    `shutdown` is set, within `graceful_timeout`)."""
    sock = listen(api.config, port)
    settings = hypercorn_config(api.config, sock)
    shutdown = anyio.Event()
    address = sock.getsockname()
    bound = [f"{address[0]}:{address[1]}"]

    async def http() -> None:
        with anyio.CancelScope(shield=True):
            if _is_trio():
                from hypercorn.trio import serve as serve_trio

                await serve_trio(api, settings, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]  # hypercorn types an ASGI app by its own Protocol, which a plain async callable does not declare
            else:
                from hypercorn.asyncio import serve as serve_asyncio

                await serve_asyncio(api, settings, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]  # hypercorn types an ASGI app by its own Protocol, which a plain async callable does not declare

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(http, name="builder-api-http")
            try:
                async with anyio.create_task_group() as workers:
                    api.runtime.attach(workers)
                    workers.start_soon(api.queue.run, name="builder-api-queue")
                    await workers.start(api.followers.run, name="builder-api-followers")
                    await workers.start(watch_config, lambda: api.config, api.apply_config, api.events.append,
                                        name="builder-api-reload")
                    api.events.append("server_started", {
                        "name": api.config.name, "bind": api.config.bind, "port": api.config.port,
                        "auth_reads": api.config.auth_reads, "has_password": bool(api.config.password),
                        "languages": list(api.config.languages)})
                    task_status.started(bound)
                    await anyio.sleep_forever()
            finally:
                shutdown.set()
                with anyio.CancelScope(shield=True):
                    await api.runtime.stop("daemon_shutdown")
    finally:
        sock.close()


def _is_trio() -> bool:
    import sniffio

    return sniffio.current_async_library() == "trio"


ServeFunction = Callable[..., Awaitable[None]]
__all__ = ["build_api", "serve", "Path"]
