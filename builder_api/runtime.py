"""The runtime: one long-lived process of the project (`/run`, `/stop`, `/status`).

Started without a shell in its own process group; `/run` restarts it; `/stop` signals the
group (`stop_signal`, then SIGKILL after `stop_timeout_s`). Unlike upstream, its exit is
noticed by a watcher task the moment it happens, and shutting builder-api down stops it.
Like a job, it gets the allow-listed environment (plus `env` and `env_passthrough`), and its
log is opened without following symlinks.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup

from builder_api.config import RuntimeSettings
from builder_api.environment import job_environment
from builder_api.events import EventStore
from builder_api.processes import stop_group
from builder_api.safefs import APPEND, open_file


class RuntimeError_(Exception):
    """`/run` could not start the process; the message is the wire `error`."""


class Runtime:
    def __init__(self, settings: RuntimeSettings, root: Callable[[], Path], events: EventStore,
                 log_path: Path | None = None) -> None:
        self.settings = settings
        self._root = root
        self._events = events
        self._log_path = log_path
        self._process: Process | None = None
        self._started_at: float | None = None
        self._stopping: Process | None = None
        self._lock = anyio.Lock()
        self._group: TaskGroup | None = None

    def attach(self, group: TaskGroup) -> None:
        """The task group that runs the exit watchers (the API's own)."""
        self._group = group

    def status(self) -> dict[str, Any]:
        running = self._process is not None and self._process.returncode is None
        return {"enabled": self.settings.enabled, "running": running,
                "pid": self._process.pid if running and self._process else None,
                "uptime_s": round(time.time() - self._started_at, 3) if running and self._started_at else None}

    async def run(self) -> int:
        if not self.settings.enabled:
            raise RuntimeError_("runtime disabled in config")
        try:
            argv = shlex.split(self.settings.start_command)
        except ValueError as error:
            raise RuntimeError_(f"launch failed: start_command: {error}") from None
        if not argv:
            raise RuntimeError_("runtime.start_command is empty")
        async with self._lock:
            await self._stop_locked("restart")
            cwd = Path(self.settings.cwd).expanduser()
            cwd = cwd if cwd.is_absolute() else self._root() / cwd
            output: Any = None
            if self._log_path is not None:
                try:
                    output = open_file(self._log_path, self._root(), APPEND, 0o600, make_folders=True)
                except OSError as error:
                    raise RuntimeError_(f"runtime log refused ({error}): nothing was started") from None
            try:
                process = await anyio.open_process(
                    argv, cwd=cwd, env=job_environment(self.settings.env, self.settings.env_passthrough, os.environ),
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT if output is not None else None,
                    start_new_session=True)
            except OSError as error:
                raise RuntimeError_(f"launch failed: {error}") from None
            finally:
                if output is not None:
                    os.close(output)
            self._process, self._started_at = process, time.time()
            self._events.append("runtime_started", {"pid": process.pid})
            if self._group is not None:
                self._group.start_soon(self._watch, process)
            return process.pid

    async def _watch(self, process: Process) -> None:
        code = await process.wait()
        if self._process is process and self._stopping is not process:
            self._process = None
            self._events.append("runtime_exited", {"pid": process.pid, "returncode": code, "cause": "self_exit"})

    async def stop(self, cause: str = "api_stop") -> None:
        async with self._lock:
            await self._stop_locked(cause)

    async def _stop_locked(self, cause: str) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.returncode is not None:
            return
        self._stopping = process
        await stop_group(process, self.settings.stop_signal, self.settings.stop_timeout_s)
        self._events.append("runtime_stopped", {"pid": process.pid, "returncode": process.returncode,
                                                "cause": cause})
