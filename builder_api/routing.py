"""builder-api's small web framework: the ASGI request and reply, and an exact router.

Routing is exact (the raw path, never percent-decoded: `/job/e%63ho` is the job `e%63ho`):
a table of (method, path) plus a few path templates (`/job/{name}`, a prefix and one
segment). HTTP parsing, keep-alive and WebSocket framing belong to the server library
(hypercorn); the endpoints live in `builder_api.app`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import anyio

SERVER = b"builder-api/0.1"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Reply(Exception):
    """Return `body` with `status` from anywhere inside a handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or []


class Request:
    def __init__(self, scope: Scope, receive: Receive, limits: Any) -> None:
        self.scope = scope
        self._receive = receive
        self._limits = limits
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        self.query = {k: v[0] for k, v in parse_qs(self.query_string, keep_blank_values=False).items()}
        self.present = set(parse_qs(self.query_string, keep_blank_values=True))
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client") or ("?", 0)
        self.ip = str(client[0])
        server = scope.get("server") or ("", 0)
        #: The port this request really reached (the Host check compares against it).
        self.port = int(server[1] or 0) if len(server) > 1 and server[1] is not None else 0
        #: A `log_origins` origin this `/log` request came from (set by the browser check).
        self.listed_origin: str | None = None

    @property
    def target_bytes(self) -> int:
        return len(self.path.encode()) + (len(self.query_string) + 1 if self.query_string else 0)

    def credential(self) -> str | None:
        header = self.headers.get("x-builder-api-password", "")
        return header if header else self.query.get("key")

    async def json_body(self) -> dict[str, Any]:
        length_text = self.headers.get("content-length", "0").strip() or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise Reply(400, {"error": "invalid Content-Length"}) from None
        if length < 0 or length > self._limits.max_body_bytes:
            raise Reply(413, {"error": "request body too large"})
        body = b""
        with anyio.move_on_after(self._limits.request_timeout_s) as timer:
            while True:
                message = await self._receive()
                body += message.get("body", b"")
                if len(body) > self._limits.max_body_bytes:
                    raise Reply(413, {"error": "request body too large"})
                if not message.get("more_body"):
                    break
        if timer.cancelled_caught:
            raise Reply(408, {"error": "request body timed out"})
        if not body.strip():
            return {}
        try:
            parsed = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Reply(400, {"error": "invalid JSON body"}) from None
        if not isinstance(parsed, dict):
            raise Reply(400, {"error": "invalid JSON body"})
        return parsed

    def number(self, name: str, default: str, kind: type = float) -> Any:
        """A numeric query parameter; 400 `invalid <name>` instead of upstream's dropped connection."""
        text = self.query.get(name, default)
        try:
            return kind(text)
        except ValueError:
            raise Reply(400, {"error": f"invalid {name}", "value": text}) from None


Handler = Callable[[Request], Awaitable["dict[str, Any] | Reply"]]


@dataclasses.dataclass(frozen=True)
class Route:
    """`kind` is "read" or "write" (what the password guards); `path` may end in one
    `{parameter}` segment, matched as a prefix."""

    method: str
    path: str
    kind: str
    handler: Handler


class Router:
    """(method, path) → route: exact paths first, then the templates' prefixes."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._exact = {(route.method, route.path): route for route in routes if "{" not in route.path}
        self._templates = [(route.method, route.path[:route.path.index("{")], route) for route in routes
                           if "{" in route.path]

    def match(self, method: str, path: str) -> Route | None:
        route = self._exact.get((method, path))
        if route is not None:
            return route
        return next((route for verb, prefix, route in self._templates
                     if verb == method and path.startswith(prefix)), None)

    def operations(self) -> set[tuple[str, str]]:
        """Every (method, path template) routed: what the OpenAPI document must list."""
        return {(route.method, route.path) for route in self.routes}


async def respond(send: Send, status: int, body: dict[str, Any] | None,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = b"" if body is None else json.dumps(body, default=str).encode()
    base = [(b"server", SERVER)]
    if body is not None:
        base += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


async def deny(scope: Scope, send: Send, status: int, body: dict[str, Any]) -> None:
    """A JSON HTTP answer instead of the upgrade (ASGI's websocket denial response)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        payload = json.dumps(body, default=str).encode()
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"server", SERVER), (b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "websocket.http.response.body", "body": payload})
    else:
        await send({"type": "websocket.close", "code": 1008})


