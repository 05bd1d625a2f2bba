"""The OpenAPI document (builder_api/openapi.py) against the router (builder_api/app.py):
the same paths and methods, in both directions — every route is documented, and every
documented operation reaches a handler on a real server (never the router's 404)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from builder_api.openapi import document
from testbed.builder_api import AUTH, api_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """The `websockets` client runs on asyncio."""
    return "asyncio"

def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, operations in document()["paths"].items() for method in operations}


async def test_every_route_is_documented_and_every_documented_operation_is_routed(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        routed = client.api.router.operations()
        assert ("GET", "/") in routed and ("POST", "/job/{name}") in routed and len(routed) == 15
        assert documented() == routed | {("GET", "/ws")}  # (the WebSocket is another ASGI scope)
        for method, path in sorted(documented() - {("GET", "/ws")}):
            url = re.sub(r"\{name\}", "echo", re.sub(r"\{id\}", "no-such-id", path))
            response = await client.request(method, url, headers=AUTH, params={"id": "x"} if
                                            path == "/build_status" else None, json={"params": {"word": "abc"}}
                                            if path.startswith("/job/") else None)
            assert response.json() != {"error": "not found", "path": url}, (method, path)
        async with connect(f"ws://{client.base_url.host}:{client.base_url.port}/ws", additional_headers=AUTH) as ws:
            assert '"hello"' in await ws.recv()
        # ... and what is not documented is not routed
        for method, path in (("GET", "/nope"), ("POST", "/status"), ("DELETE", "/jobs")):
            response = await client.request(method, path, headers=AUTH)
            assert (response.status_code, response.json()) == (404, {"error": "not found", "path": path})
