"""The build queue: one worker, strict FIFO, at most one running job (docs/upstream.md#wire-protocol).

Everything here is anyio, so it runs on asyncio (inside the supervisor) and on trio alike.
Jobs run without a shell in their own process group; a timeout or a cancel signals the
whole group (TERM, then KILL after the grace), and shutting the queue down does the same —
no orphans (upstream's `os._exit` left them running).

Walls (docs/builder-api.md, "Files, pins, environment, caps"): a job gets an allow-listed
environment (`environment.py`); a pinned job runs a verified private copy (`pins.py`);
the build log is opened without following symlinks (`safefs.py`), and the header line the
API writes into it carries request values JSON-encoded, so none becomes a line of its own.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from builder_api.environment import job_environment
from builder_api.events import EventStore
from builder_api.jobs import LeafJob, pin_is_named
from builder_api.pins import PinBroken, names_pinned_file as names_pinned, substitute, verified_copy
from builder_api.processes import stop_group
from builder_api.safefs import APPEND, READ, open_file

HISTORY = 20
LOG_TAIL_LINES = 40
DEFAULT_GRACE_S = 3.0
CANCEL_WAIT_S = 15.0
RC_TIMEOUT, RC_LAUNCH, RC_NOT_FOUND = -1, 126, 127
CONTAINER_TOKEN = "{{container}}"
TERMINAL = ("done", "failed", "cancelled")

#: Finds the running container of a project for `{{container}}` (None: there is none).
ContainerLookup = Callable[[str], Awaitable[str | None]]


class QueueFull(Exception):
    def __init__(self, capacity: int) -> None:
        super().__init__(f"pending queue at capacity ({capacity})")
        self.capacity = capacity


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat()


def fingerprint(job_name: str, argv: list[str], platform: str | None = None) -> str:
    text = job_name + "\0" + "".join(arg + "\0" for arg in argv) + (f"@{platform}" if platform else "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Entry:
    id: str
    job_name: str
    args: list[str]
    command: str
    timeout_s: int
    kill_after_s: int
    cwd: str
    params: dict[str, str]
    agent_id: str
    fingerprint: str
    platform: str | None = None
    #: (file, sha256): re-read right before exec, and the verified bytes are what runs
    #: (docs/upstream.md#api-pins-verified-at-run)
    pin: tuple[Path, str] | None = None
    #: "command": the pinned file is the command; "args": an argument names it; "auto": any
    #: argument naming it gets the copy (else check only); "check": check only (make's Makefile)
    pin_mode: str = "auto"
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    env_passthrough: tuple[str, ...] = ()
    status: str = "queued"
    returncode: int | None = None
    queued_at: float = dataclasses.field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    finished_reason: str | None = None
    log_tail: str = ""
    cancel_requested: bool = False
    process: Process | None = None
    finished: anyio.Event = dataclasses.field(default_factory=anyio.Event)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self, *, log_tail: bool = True) -> dict[str, Any]:
        elapsed = None
        if self.started_at is not None:
            elapsed = round((self.finished_at or time.time()) - self.started_at, 3)
        shown: dict[str, Any] = {
            "id": self.id, "agent_id": self.agent_id, "args": list(self.args), "status": self.status,
            "returncode": self.returncode, "queued_at": self.queued_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "command": self.command, "timeout_s": self.timeout_s,
            "elapsed_s": elapsed, "queued_at_iso": _iso(self.queued_at), "started_at_iso": _iso(self.started_at),
            "finished_at_iso": _iso(self.finished_at),
        }
        if log_tail:
            shown["log_tail"] = self.log_tail
        shown["job_name"] = self.job_name
        shown["params"] = dict(self.params)
        if self.platform is not None:
            shown["platform"] = self.platform  # additive (docs/upstream.md#api-hub-platform)
        return shown


TAIL_READ_BYTES = 256 * 1024


def tail_lines(path: Path, offset: int, count: int = LOG_TAIL_LINES, root: Path | None = None) -> str:
    """The last `count` lines written after `offset` (the last 256 KiB of them at most)."""
    try:
        descriptor = open_file(path, root, READ)
    except OSError:
        return ""
    try:
        size = os.fstat(descriptor).st_size
        start = max(offset, size - TAIL_READ_BYTES)
        text = os.pread(descriptor, max(0, size - start), start).decode(errors="replace")
    finally:
        os.close(descriptor)
    return "\n".join(text.splitlines()[-count:])


def _pin_mode(job: LeafJob) -> str:
    if job.command_hash is None:
        return "auto"
    if not pin_is_named(job):
        return "check"
    command = job.command
    pin = os.path.normpath(job.command_hash.path)
    if "/" in command and not command.startswith("/") and pin in (
            os.path.normpath(command), os.path.normpath(os.path.join(job.cwd, command))):
        return "command"
    return "args"


def _header(entry: Entry, cwd: Path) -> str:
    """The build log's header line: every request-provided value JSON-encoded (a newline in
    an `agent_id` stays `\\n`, never the start of a forged line)."""
    return (f"\n=== build {entry.id} agent={json.dumps(entry.agent_id or '?')} args={json.dumps(entry.args)} "
            f"cwd={json.dumps(str(cwd))} start={_iso(entry.started_at)} ===\n")


class BuildQueue:
    def __init__(self, *, project: str, root: Callable[[], Path], events: EventStore, build_log: Path,
                 max_pending: Callable[[], int], dedupe_window_s: Callable[[], float],
                 find_container: ContainerLookup | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.project = project
        self._root = root
        self._events = events
        self.build_log = build_log
        self._max_pending = max_pending
        self._dedupe_window_s = dedupe_window_s
        self._find_container = find_container
        #: The environment the allow-list is taken from (default: this process's).
        self._environ = environ
        self.pending: collections.deque[Entry] = collections.deque()
        self.current: Entry | None = None
        self.history: collections.deque[Entry] = collections.deque(maxlen=HISTORY)
        self._by_id: dict[str, Entry] = {}
        self._wakeup = anyio.Event()

    # -- the API side ------------------------------------------------------------------------
    def enqueue(self, *, job_name: str, argv: list[str], command: Path, timeout_s: int, kill_after_s: int,
                cwd: str, params: dict[str, str], agent_id: str, platform: str | None = None,
                pin: tuple[Path, str] | None = None, job: LeafJob | None = None) -> Entry:
        """Queue a run (or return the running/queued/recent duplicate). `job` brings the
        pin (checked and enforced at run time), `env` and `env_passthrough` of the leaf."""
        print_ = fingerprint(job_name, argv, platform)
        existing = self._duplicate(print_)
        if existing is not None:
            return existing
        if len(self.pending) >= self._max_pending():
            raise QueueFull(self._max_pending())
        entry = Entry(id=secrets.token_hex(4), job_name=job_name, args=list(argv), command=str(command),
                      timeout_s=timeout_s, kill_after_s=kill_after_s, cwd=cwd, params=dict(params),
                      agent_id=agent_id, fingerprint=print_, platform=platform, pin=pin)
        if job is not None:
            if job.command_hash is not None:
                entry.pin = (Path(job.command_hash.path), job.command_hash.sha256)
                entry.pin_mode = _pin_mode(job)
            entry.env, entry.env_passthrough = dict(job.env), tuple(job.env_passthrough)
        while entry.id in self._by_id:
            entry.id = secrets.token_hex(4)
        self._by_id[entry.id] = entry
        self.pending.append(entry)
        self._events.append("job_enqueued", {"id": entry.id, "agent_id": agent_id, "args": entry.args,
                                             "job": job_name})
        self._wakeup.set()
        return entry

    def _duplicate(self, print_: str) -> Entry | None:
        window = self._dedupe_window_s()
        if window <= 0:
            return None
        for entry in self.pending:
            if entry.fingerprint == print_:
                return entry
        if self.current is not None and self.current.fingerprint == print_:
            return self.current
        now = time.time()
        for entry in self.history:
            if entry.fingerprint == print_ and now - (entry.finished_at or entry.queued_at) <= window:
                return entry
        return None

    def _remember(self, entry: Entry) -> None:
        """Into the bounded history; what falls out of it is forgotten by id too, so a long
        session of jobs does not grow the API's memory without end."""
        if len(self.history) == self.history.maxlen:
            oldest = self.history[-1]
            if oldest is not self.current and oldest not in self.pending:
                self._by_id.pop(oldest.id, None)
        self.history.appendleft(entry)

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)

    def cancel_pending(self, entry_id: str) -> Entry | None:
        entry = next((e for e in self.pending if e.id == entry_id), None)
        if entry is None:
            return None
        self.pending.remove(entry)
        entry.status, entry.finished_at = "cancelled", time.time()
        self._remember(entry)
        entry.finished.set()
        self._events.append("job_cancelled", {"id": entry.id, "agent_id": entry.agent_id})
        return entry

    async def cancel_current(self) -> Entry | None:
        """Cancel the running entry (TERM to its group, KILL after the grace); None if nothing runs.

        Unlike upstream, an entry that is current but not yet launched is cancelled too:
        it is marked, and the worker finalises it as cancelled instead of launching it."""
        entry = self.current
        if entry is None:
            return None
        entry.cancel_requested = True
        if entry.process is not None:
            await self._stop_group(entry.process, entry.kill_after_s)
        with anyio.move_on_after(CANCEL_WAIT_S):
            await entry.finished.wait()
        return entry

    async def wait(self, entry_id: str, seconds: float) -> Entry | None:
        entry = self._by_id.get(entry_id)
        if entry is not None and not entry.terminal and seconds > 0:
            with anyio.move_on_after(seconds):
                await entry.finished.wait()
        return entry

    def snapshot(self) -> dict[str, Any]:
        return {"current": self.current.public() if self.current else None,
                "pending": [entry.public() for entry in self.pending],
                "history": [entry.public(log_tail=False) for entry in self.history],
                "total_history": len(self.history)}

    # -- the worker ----------------------------------------------------------------------------
    async def run(self) -> None:
        """The worker task: run entries one at a time, until cancelled (then stop the current
        job's process group before returning)."""
        try:
            while True:
                if not self.pending:
                    await self._wakeup.wait()
                    self._wakeup = anyio.Event()
                    continue
                entry = self.pending.popleft()
                self.current = entry
                try:
                    await self._execute(entry)
                finally:
                    self.current = None
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop_current()

    async def stop_current(self) -> None:
        entry = self.current
        if entry is not None and entry.process is not None and entry.process.returncode is None:
            entry.cancel_requested = True
            await self._stop_group(entry.process, entry.kill_after_s)

    async def _stop_group(self, process: Process, kill_after_s: int) -> None:
        await stop_group(process, signal.SIGTERM, kill_after_s or DEFAULT_GRACE_S)

    async def _execute(self, entry: Entry) -> None:
        entry.status, entry.started_at = "building", time.time()
        self._events.append("job_started", {"id": entry.id, "agent_id": entry.agent_id, "args": entry.args,
                                            "job": entry.job_name})
        if entry.cancel_requested:
            return self._finish(entry, None, "cancelled", offset=None)
        argv = list(entry.args)
        if CONTAINER_TOKEN in argv:
            container = await self._find_container(self.project) if self._find_container else None
            if not container:
                return self._finish(entry, RC_LAUNCH, f"no running container of project {self.project}",
                                    offset=None)
            argv = [container if arg == CONTAINER_TOKEN else arg for arg in argv]
        root = self._root()
        cwd = root if entry.cwd in (".", "") else (root / entry.cwd).resolve()
        if cwd != root and root not in cwd.parents:
            return self._finish(entry, RC_LAUNCH, f"cwd escapes project root: {entry.cwd}", offset=None)
        with contextlib.ExitStack() as cleanup:
            command = entry.command
            if entry.pin is not None:
                pinned, sha256 = entry.pin
                relative = os.path.relpath(pinned, root) if pinned.is_absolute() else str(pinned)
                try:
                    copy = cleanup.enter_context(verified_copy(root, relative, sha256))
                except PinBroken as broken:
                    return self._finish(entry, RC_LAUNCH, "command_hash_mismatch", offset=None, detail=str(broken))
                if entry.pin_mode == "command":
                    command = str(copy)
                elif entry.pin_mode in ("args", "auto"):
                    argv, named = substitute(argv, cwd, root, relative, copy)
                    if not named and names_pinned(command, cwd, root, relative):
                        command, named = str(copy), True
                    if not named and entry.pin_mode == "args":
                        return self._finish(entry, RC_LAUNCH, "command_hash_mismatch", offset=None,
                                            detail=f"command_hash_mismatch: {relative} is no longer named in the "
                                                   "command line: nothing was run")
            try:
                log = open_file(self.build_log, root, APPEND, 0o600, make_folders=True)
            except OSError as error:
                return self._finish(entry, RC_LAUNCH, "build log refused", offset=None,
                                    detail=f"build log refused ({error}): nothing was run")
            try:
                offset = os.fstat(log).st_size
                os.write(log, _header(entry, cwd).encode())
                try:
                    process = await anyio.open_process(
                        [command, *argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True,
                        env=job_environment(entry.env, entry.env_passthrough, self._environ))
                except FileNotFoundError:
                    return self._finish(entry, RC_NOT_FOUND, "command not found", offset=offset)
                except OSError as error:
                    return self._finish(entry, RC_LAUNCH, f"launch failed: {error}", offset=offset)
            finally:
                os.close(log)
            await self._supervise(entry, process, offset)

    async def _supervise(self, entry: Entry, process: Process, offset: int) -> None:
        entry.process = process
        try:
            with anyio.move_on_after(entry.timeout_s) as timer:
                code = await process.wait()
            if timer.cancelled_caught:
                await self._stop_group(process, entry.kill_after_s)
                return self._finish(entry, RC_TIMEOUT, "timeout", offset=offset)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stop_group(process, entry.kill_after_s)
                self._finish(entry, process.returncode, "cancelled", offset=offset)
            raise
        reason = None
        if code < 0:
            reason = "cancelled" if entry.cancel_requested else f"killed by signal {-code}"
        self._finish(entry, code, reason, offset=offset)

    def _finish(self, entry: Entry, code: int | None, reason: str | None, *, offset: int | None,
                detail: str | None = None) -> None:
        entry.returncode, entry.finished_at, entry.finished_reason = code, time.time(), reason
        if reason == "cancelled":
            entry.status = "cancelled"
        else:
            entry.status = "done" if code == 0 else "failed"
        # A failure before launch shows its own reason, never other builds' output
        # (docs/upstream.md#api-own-failure-reason).
        entry.log_tail = (tail_lines(self.build_log, offset, root=self._root()) if offset is not None
                          else f"[builder-api] {detail or reason}")
        entry.process = None
        self._remember(entry)
        entry.finished.set()
        payload: dict[str, Any] = {"id": entry.id, "agent_id": entry.agent_id, "status": entry.status,
                                   "returncode": code, "elapsed_s": entry.public()["elapsed_s"], "job": entry.job_name}
        if reason:
            payload["reason"] = reason
        if detail:
            payload["detail"] = detail
        self._events.append("job_finished", payload)
