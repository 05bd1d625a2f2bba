"""The OpenAPI 3.1 document served at `/openapi.json`: every endpoint, its parameters,
status codes and JSON shapes (CI fuzzes the server against it with schemathesis)."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ENTRY = {"type": "object", "required": ["id", "agent_id", "args", "status", "returncode", "queued_at", "command",
                                         "timeout_s", "job_name", "params"],
          "properties": {"id": {"type": "string"}, "agent_id": {"type": "string"},
                         "args": {"type": "array", "items": {"type": "string"}},
                         "status": {"enum": ["queued", "building", "done", "failed", "cancelled"]},
                         "returncode": {"type": ["integer", "null"]}, "queued_at": {"type": "number"},
                         "started_at": {"type": ["number", "null"]}, "finished_at": {"type": ["number", "null"]},
                         "command": {"type": "string"}, "timeout_s": {"type": "integer"},
                         "elapsed_s": {"type": ["number", "null"]}, "log_tail": {"type": "string"},
                         "job_name": {"type": "string"}, "params": {"type": "object"}}}
_AUTH = {"401": {"description": "authentication required (failures from one source are answered ever more "
                                  "slowly; the right password never is)",
                   "content": {"application/json": {"schema": _ERROR}}},
         "403": {"description": "Host not allowed, or a cross-origin (browser) request",
                 "content": {"application/json": {"schema": _ERROR}}}}
_BODY = {"415": {"description": "a body that is not Content-Type: application/json",
                 "content": {"application/json": {"schema": _ERROR}}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def document() -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"password": []}, {"key": []}]
    bad = {"400": _json("bad parameter", _ERROR)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "builder-api", "version": "0.1",
                 "description": "Host-side build/run/logs/events API of llm-docker (wire-compatible with the "
                                "upstream daemon)."},
        "components": {"securitySchemes": {
            "password": {"type": "apiKey", "in": "header", "name": "X-Builder-API-Password"},
            "key": {"type": "apiKey", "in": "query", "name": "key"}}},
        "security": security,
        "paths": {
            "/": {"get": {"security": [], "responses": {"403": _AUTH["403"], "200": _json("identity", {
                "type": "object", "required": ["name", "version", "port", "bind", "uptime_s"]})}}},
            "/status": {"get": {"responses": {"200": _json("runtime and current build"), **_AUTH}}},
            "/build": {"post": {"responses": {"410": _json("removed: use POST /job/<name>", _ERROR), **_AUTH}}},
            "/build_status": {"get": {
                "parameters": [_query("id", {"type": "string"}, True),
                               _query("wait", {"type": "number", "minimum": 0, "maximum": 60})],
                "responses": {"200": _json("entry, or status gone"), **bad, **_AUTH}}},
            "/job/{name}": {"post": {
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                               _query("platform", {"type": "string"}), _query("dryrun", {"type": "string"}),
                               _query("confirm", {"type": "string"})],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"params": {"type": "object",
                                                                "additionalProperties": {"type": "string"}},
                                                     "agent_id": {"type": "string"}}}}}},
                "responses": {"200": _json("dry run"), "202": _json("queued (or the deduplicated entry)", _ENTRY),
                              "400": _json("validation failed / missing platform", _ERROR),
                              "404": _json("unknown job or verb", _ERROR), "412": _json("command refused", _ERROR),
                              "413": _json("body too large", _ERROR), "428": _json("confirmation needed", _ERROR),
                              "429": _json("too many pending jobs", _ERROR), **_BODY, **_AUTH}}},
            "/jobs": {"get": {"responses": {"200": _json("job catalogue"), **_AUTH}}},
            "/queue": {"get": {"responses": {"200": _json("current, pending, history"), **_AUTH}}},
            "/queue/{id}": {"delete": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json("cancelled"), "400": _json("missing id", _ERROR),
                              "404": _json("not pending", _ERROR), **_AUTH}}},
            "/current/cancel": {"delete": {"responses": {"200": _json("cancelled"),
                                                         "404": _json("nothing running", _ERROR), **_AUTH}}},
            "/logs": {"get": {"parameters": [_query("file", {"type": "string"}), _query("n", {"type": "integer"})],
                              "responses": {"200": _json("tail"), **bad, "404": _json("unknown alias", _ERROR),
                                            **_AUTH}}},
            "/events": {"get": {"parameters": [_query("type", {"type": "string"}), _query("since", {"type": "number"}),
                                               _query("n", {"type": "integer"}), _query("pid", {"type": "integer"})],
                                "responses": {"200": _json("events"), **bad, **_AUTH}}},
            "/log": {"post": {
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["message"], "properties": {
                        "message": {"type": "string"}, "level": {"type": "string"}, "source": {"type": "string"},
                        "url": {"type": "string"}, "stack": {"type": "string"}, "timestamp": {"type": "number"},
                        "agent_id": {"type": "string"}}}}}},
                "description": "Also the browser snippet's endpoint: from an origin listed in `log_origins` it "
                               "needs no password and may send `text/plain` (navigator.sendBeacon).",
                "responses": {"202": _json("stored"), **bad, "413": _json("body too large", _ERROR), **_BODY,
                              **_AUTH}}},
            "/run": {"post": {"responses": {"200": _json("started"), "400": _json("cannot start", _ERROR), **_AUTH}}},
            "/stop": {"post": {"responses": {"200": _json("stopped"), **_AUTH}}},
            "/ws": {"get": {"description": "WebSocket: hello, event, log and status frames; commands status, "
                                           "queue, events.",
                            "responses": {"101": {"description": "switching protocols"}, **_AUTH}}},
            "/openapi.json": {"get": {"responses": {"200": _json("this document"), **_AUTH}}},
        },
    }
