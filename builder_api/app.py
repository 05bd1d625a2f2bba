"""The builder-api HTTP/WebSocket application (ASGI), wire-compatible with the upstream
daemon (docs/upstream.md#wire-protocol) minus its bugs (docs/upstream.md#changed-builder-api).

The endpoints and the state they share; the request, reply and exact router are
`builder_api.routing`. Every JSON body is `json.dumps(obj, default=str)` like upstream's.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import anyio

from builder_api.auth import AuthGate
from builder_api.browser import BrowserVerdict, cors_headers, judge, preflight_headers
from builder_api.config import ProjectConfig
from builder_api.events import EventStore
from builder_api.jobs import (
    CommandRefused,
    HubJob,
    LeafJob,
    ValidationFailed,
    resolve_command,
    validate_and_substitute,
    verify_command_hash,
)
from builder_api.live import FollowerHub
from builder_api.logs import FileRefused, tail
from builder_api.openapi import document
from builder_api.queue import BuildQueue, QueueFull
from builder_api.routing import (
    Receive,
    Reply,
    Request,
    Route,
    Router,
    Scope,
    Send,
    deny as deny_upgrade,
    respond,
)
from builder_api.runtime import Runtime, RuntimeError_

MUTED = {"/build_status", "/events", "/status", "/", "/ws", "/log"}
LOG_LEVELS = {"log", "warn", "error", "info", "debug"}
REMOVED_BUILD = {"error": "endpoint removed", "use": "POST /job/<name>",
                 "note": "Per-project [build] tables are gone. Declare your commands as [jobs.X] in "
                         "~/.llm-docker/api_config/builder-api.toml."}

class BuilderAPI:
    """One project's API: the ASGI callable plus the state every route shares."""

    def __init__(self, config: ProjectConfig, *, events: EventStore, queue: BuildQueue, runtime: Runtime) -> None:
        self.config = config
        self.events = events
        self.queue = queue
        self.runtime = runtime
        self.started = time.time()
        self.followers = FollowerHub(lambda: self.config.root, lambda: self.config.security.max_ws_clients,
                                     lambda: self.config.security.max_followers)
        self.auth = AuthGate(lambda: self.config.password, config.security.auth_failures_per_min,
                             _max_delay(config))
        #: Every HTTP endpoint ("/" answers without the password, see `_route`); the WebSocket
        #: (`GET /ws`) is another ASGI scope, served by `_websocket`.
        self.router = Router([
            Route("GET", "/", "public", self.identity),
            Route("GET", "/status", "read", self.status),
            Route("POST", "/build", "write", self.build_removed),
            Route("GET", "/build_status", "read", self.build_status),
            Route("POST", "/job/{name}", "write", self.run_job),
            Route("GET", "/jobs", "read", self.jobs),
            Route("GET", "/queue", "read", self.queue_snapshot),
            Route("DELETE", "/queue/{id}", "write", self.cancel_pending),
            Route("DELETE", "/current/cancel", "write", self.cancel_current),
            Route("GET", "/logs", "read", self.logs),
            Route("GET", "/events", "read", self.query_events),
            Route("POST", "/log", "write", self.ingest_log),
            Route("POST", "/run", "write", self.run),
            Route("POST", "/stop", "write", self.stop),
            Route("GET", "/openapi.json", "read", self.openapi),
        ])

    def apply_config(self, config: ProjectConfig) -> None:
        """Hot reload: every route reads `self.config`, so this is the whole switch."""
        self.config = config
        self.runtime.settings = config.runtime
        self.auth.threshold = config.security.auth_failures_per_min
        self.auth.max_delay_s = _max_delay(config)

    # -- ASGI ----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(Request(scope, receive, self.config.security), send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def _browser(self, request: Request) -> BrowserVerdict:
        config = self.config
        verdict = judge(request.headers, method=request.method, path=request.path,
                        port=request.port or config.port, bind=config.bind,
                        allowed_hosts=config.allowed_hosts, log_origins=config.log_origins)
        request.listed_origin = verdict.origin
        return verdict

    async def _http(self, request: Request, send: Send) -> None:
        browser = self._browser(request)
        if browser.refusal is not None:
            await respond(send, browser.refusal.status, browser.refusal.body)
            self._http_call(request, browser.refusal.status, browser.refusal.body)
            return
        if request.method == "OPTIONS":
            await respond(send, 204, None, preflight_headers(browser.origin, request.headers))
            return
        if request.method not in ("GET", "POST", "DELETE"):
            # Upstream's stdlib answered 501 (HTML); a 4xx is the honest answer for a client's choice.
            await respond(send, 405, {"error": f"method not allowed: {request.method}"},
                           [(b"allow", b"GET, POST, DELETE, OPTIONS")])
            return
        cors = cors_headers(browser.origin)
        if request.target_bytes > self.config.security.max_url_bytes:
            await respond(send, 414, {"error": "URI too long"})
            return
        try:
            status, body, headers = 200, await self._route(request), []
        except Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        await respond(send, status, body, headers + cors)
        self._http_call(request, status, body)

    async def _route(self, request: Request) -> dict[str, Any]:
        path, method = request.path, request.method
        route = self.router.match(method, path)
        if route is None:
            raise Reply(404, {"error": "not found", "path": path})
        kind, handler = route.kind, route.handler
        # A listed origin's page may post its console logs without the password (it cannot
        # hold one safely); everything else needs it — reads too, unless `auth_reads = false`.
        simple_log = request.listed_origin is not None and path == "/log"
        if kind != "public":  # `GET /` answers anyone (and counts no failure)
            await self._authorize(request, required=not simple_log and (kind == "write" or self.config.auth_reads))
        result = await handler(request)
        if isinstance(result, Reply):
            raise result
        return result

    async def _authorize(self, request: Request, *, required: bool) -> None:
        verdict = await self.auth.check(request.ip, request.credential(), required=required)
        if verdict.backoff_started:
            self.events.append("auth_backoff", {"ip": request.ip, "at": time.time(), "threshold": self.auth.threshold,
                                                "window_s": 60, "max_delay_s": self.auth.max_delay_s})
        if verdict.status:
            raise Reply(verdict.status, {"error": verdict.error})

    def _http_call(self, request: Request, status: int, body: dict[str, Any] | None) -> None:
        if status < 400 and request.path in MUTED:
            return
        if status in (400, 413, 414) and body and body.get("error") in (
                "invalid Content-Length", "request body too large", "URI too long"):
            return
        body = body or {}
        summary = ""
        for key in ("error", "status", "state"):
            if body.get(key):
                summary = str(body[key])
                if key == "status" and "returncode" in body:
                    summary = f"{summary}·rc={body['returncode']}"
                break
        else:
            if isinstance(body.get("jobs"), dict):
                summary = f"{len(body['jobs'])} jobs"
            elif isinstance(body.get("events"), list):
                summary = f"{len(body['events'])} events"
            else:
                summary = f"{len(body)} keys"
        text = body.get("text")
        shown = text[:8000] if isinstance(text, str) else json.dumps(body, indent=2, default=str)[:4000]
        # The password never leaves: `key` is redacted (upstream broadcast it; docs/upstream.md#api-key-redacted).
        query = {k: ("<redacted>" if k == "key" else v) for k, v in request.query.items()}
        payload = {"method": request.method, "path": request.path, "query": query, "status": status,
                   "summary": summary[:100], "body": shown, "ip": request.ip}
        if status not in (401, 429):
            payload["agent_id"] = request.headers.get("x-agent-id")
        self.events.append("http_call", payload, persist=False)

    # -- endpoints -------------------------------------------------------------------------------
    def root(self) -> dict[str, Any]:
        return {"name": self.config.name, "version": "0.1", "port": self.config.port, "bind": self.config.bind,
                "uptime_s": round(time.time() - self.started, 2)}

    async def identity(self, request: Request) -> dict[str, Any]:
        """`GET /`: who answers (no password needed)."""
        return self.root()

    async def openapi(self, request: Request) -> dict[str, Any]:
        return document()

    async def status(self, request: Request) -> dict[str, Any]:
        current = self.queue.current
        return {"name": self.config.name, "uptime_s": round(time.time() - self.started, 2),
                "runtime": self.runtime.status(),
                "current_build": {**current.public(), "log_tail": ""} if current else None}

    async def build_removed(self, request: Request) -> Reply:
        return Reply(410, REMOVED_BUILD)

    async def build_status(self, request: Request) -> dict[str, Any]:
        entry_id = request.query.get("id")
        if not entry_id:
            raise Reply(400, {"error": "missing id param"})
        wait = max(0.0, min(60.0, request.number("wait", "0")))
        entry = await self.queue.wait(entry_id, wait)
        if entry is None:
            return {"id": entry_id, "status": "gone", "poll_timed_out": False, "build_timed_out": False,
                    "timed_out": False}
        poll_timed_out = not entry.terminal
        return {**entry.public(), "poll_timed_out": poll_timed_out,
                "build_timed_out": entry.status == "failed" and entry.finished_reason == "timeout",
                "timed_out": poll_timed_out}

    async def jobs(self, request: Request) -> dict[str, Any]:
        config = self.config
        verbs = {}
        for name, verb in config.verbs.items():
            job = config.jobs.get(name)
            verbs[name] = {"platforms": list(verb.platforms), "required_param": verb.required_param,
                           "description": verb.description,
                           "implemented_platforms": sorted(job.platforms) if isinstance(job, HubJob) else []}
        return {"jobs": {name: job.public() for name, job in config.jobs.items()}, "verbs": verbs,
                "config_version": "0.4", "config_mtime": config.config_mtime, "project": config.name,
                "languages": list(config.languages), "shard_paths": [str(p) for p in config.shard_paths]}

    async def queue_snapshot(self, request: Request) -> dict[str, Any]:
        return self.queue.snapshot()

    async def cancel_pending(self, request: Request) -> dict[str, Any]:
        entry_id = request.path[len("/queue/"):]
        if not entry_id:
            raise Reply(400, {"error": "missing queue id"})
        if self.queue.cancel_pending(entry_id) is None:
            raise Reply(404, {"error": "not pending (already running, finished, or unknown)"})
        return {"ok": True, "cancelled": entry_id}

    async def cancel_current(self, request: Request) -> dict[str, Any]:
        entry = await self.queue.cancel_current()
        if entry is None:
            raise Reply(404, {"error": "no_current_build"})
        return {"ok": True, "cancelled": entry.id, "job_name": entry.job_name, "status": entry.status,
                "returncode": entry.returncode}

    async def logs(self, request: Request) -> dict[str, Any]:
        aliases = self.config.log_aliases
        alias = request.query.get("file")
        if not alias:
            raise Reply(400, {"error": "missing file param", "available": sorted(aliases)})
        n = request.number("n", "200", int)
        if alias not in aliases:
            raise Reply(404, {"error": f"unknown log alias: {alias}", "available": sorted(aliases)})
        try:
            text = await anyio.to_thread.run_sync(tail, aliases[alias], n, self.config.root)
        except FileRefused:
            raise Reply(403, {"error": "log file refused: a symlink, or not a regular file", "file": alias}) from None
        return {"file": alias, "lines": n, "text": text}

    async def query_events(self, request: Request) -> dict[str, Any]:
        since = request.number("since", "nan") if "since" in request.query else None
        pid = request.number("pid", "0", int) if "pid" in request.query else None
        n = request.number("n", "200", int)
        event_type = request.query.get("type")
        return await anyio.to_thread.run_sync(  # a file read (the agent may write it): off the loop
            lambda: self.events.query(event_type=event_type, since=since, n=n, pid=pid), abandon_on_cancel=True)

    async def ingest_log(self, request: Request) -> Reply:
        body = await request.json_body()
        message = body.get("message")
        if not isinstance(message, str) or not message:
            raise Reply(400, {"error": "message must be a non-empty string"})
        level = str(body.get("level") or "log").lower()
        source = str(body.get("source") or "browser").lower()
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", source):
            source = "browser"
        payload: dict[str, Any] = {"level": level if level in LOG_LEVELS else "log", "message": message[:16384],
                                   "source": source}
        if body.get("url"):
            payload["url"] = str(body["url"])[:2048]
        if body.get("stack"):
            payload["stack"] = str(body["stack"])[:8192]
        if body.get("agent_id"):
            payload["agent_id"] = str(body["agent_id"])[:128]
        if body.get("timestamp") is not None:
            try:
                payload["client_ts"] = float(body["timestamp"])
            except (TypeError, ValueError):
                pass
        self.events.append(f"{source}_log", payload)
        return Reply(202, {"ok": True})

    async def run(self, request: Request) -> dict[str, Any]:
        try:
            pid = await self.runtime.run()
        except RuntimeError_ as error:
            raise Reply(400, {"ok": False, "error": str(error)}) from None
        return {"ok": True, "pid": pid}

    async def stop(self, request: Request) -> dict[str, Any]:
        await self.runtime.stop()
        return {"ok": True, "running": False}

    async def run_job(self, request: Request) -> Reply:
        name = request.path[len("/job/"):]
        config = self.config
        job, verb = config.jobs.get(name), config.verbs.get(name)
        if job is None and verb is not None:
            raise Reply(404, {"error": "verb_not_implemented", "verb": name, "project": config.name,
                              "declared_platforms": list(verb.platforms), "implemented_platforms": [],
                              "hint": f"add a [project.{config.name}.jobs.{name}.platforms.<platform>] block to "
                                      "your project's shard."})
        if job is None:
            raise Reply(404, {"error": "unknown_job", "name": name, "available": sorted(config.jobs)})
        platform = None
        if isinstance(job, HubJob):
            platform = request.query.get("platform", "").strip() or None
            leaves = sorted(job.platforms)
            declared = list(verb.platforms) if verb else []
            if platform is None:
                raise Reply(400, {"error": "missing_param", "param": (verb.required_param if verb else "platform"),
                                  "verb": name, "declared_platforms": declared, "implemented_platforms": leaves,
                                  "hint": f"call POST /job/{name}?platform=<one of {leaves}>"})
            if verb is not None and platform not in verb.platforms:
                raise Reply(400, {"error": "platform_not_declared", "verb": name, "platform": platform,
                                  "declared_platforms": declared})
            if platform not in job.platforms:
                raise Reply(404, {"error": "verb_not_implemented", "verb": name, "platform": platform,
                                  "project": config.name, "declared_platforms": declared,
                                  "implemented_platforms": leaves})
            leaf: LeafJob = job.platforms[platform]
        else:
            leaf = job
        body = await request.json_body()
        params = body.get("params") or {}
        agent_id = str(body.get("agent_id") or request.headers.get("x-agent-id") or "")
        try:
            argv, supplied = validate_and_substitute(leaf, params, f"/job/{name}")
            command = resolve_command(leaf, config.root)
            verify_command_hash(leaf, config.root, command)
        except ValidationFailed as failure:
            raise Reply(400, failure.body()) from None
        except CommandRefused as refused:
            raise Reply(412, refused.body) from None
        dryrun = request.query.get("dryrun", "").strip().lower()
        if dryrun in ("1", "true", "yes", "on") or ("dryrun" in request.present and not dryrun):
            # A bare `?dryrun` is a dry run, as documented (upstream ran the job for real;
            # docs/upstream.md#api-bare-dryrun).
            cwd = config.root if leaf.cwd in (".", "") else (config.root / leaf.cwd)
            return Reply(200, {"dryrun": True, "job": name, "would_run": [str(command), *argv], "cwd": str(cwd),
                               "timeout_s": leaf.timeout_s, "mutates_filesystem": leaf.mutates_filesystem,
                               "matched_placeholders": supplied})
        if leaf.mutates_filesystem:
            confirmed = (request.headers.get("x-mutation-confirmed", "").strip().lower() == "yes"
                         or request.query.get("confirm", "").strip().lower() == "yes")
            if not confirmed:
                raise Reply(428, {"error": "mutation_confirmation_required", "job": name,
                                  "reason": "this job is declared `mutates_filesystem = true`",
                                  "fix": "send header `X-Mutation-Confirmed: yes` OR add `?confirm=yes` to the URL "
                                         "to confirm intent to run a write-in-place job"})
        try:
            entry = self.queue.enqueue(job_name=name, argv=argv, command=command, timeout_s=leaf.timeout_s,
                                       kill_after_s=leaf.kill_after_s, cwd=leaf.cwd, params=supplied,
                                       agent_id=agent_id, platform=platform, job=leaf)
        except QueueFull as full:
            raise Reply(429, {"error": str(full)}) from None
        return Reply(202, {"queue_id": entry.id, **entry.public()})

    # -- WebSocket -------------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request({**scope, "method": "GET"}, receive, self.config.security)
        browser = self._browser(request)  # browsers send Origin on WebSockets; CORS does not apply
        if browser.refusal is not None:
            await deny_upgrade(scope, send, browser.refusal.status, browser.refusal.body)
            self._http_call(request, browser.refusal.status, browser.refusal.body)
            return
        if request.path != "/ws":
            await deny_upgrade(scope, send, 404, {"error": "not found", "path": request.path})
            return
        try:
            await self._authorize(request, required=True)
        except Reply as reply:
            await deny_upgrade(scope, send, reply.status, reply.body)
            self._http_call(request, reply.status, reply.body)
            return
        from builder_api.websocket import accept

        async def deny(status: int, body: dict[str, Any]) -> None:
            await deny_upgrade(scope, send, status, body)
            self._http_call(request, status, body)

        await accept(self, request.query.get("logs") if "logs" in request.present else None, receive, send, deny)


def _max_delay(config: ProjectConfig) -> float:
    """The back-off cap, kept under the server's read timeout so a slowed client still gets
    its 401 instead of a dropped connection."""
    return max(0.0, min(config.security.auth_backoff_max_s, config.security.request_timeout_s / 2))
