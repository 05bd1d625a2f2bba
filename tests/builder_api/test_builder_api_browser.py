"""Web pages cannot drive builder-api: forged Host (DNS rebinding) and Origin headers get
403, CORS is granted to `log_origins` on `/log` only and never with `*`, a body that is not
`application/json` gets 415 — and the browser snippet of docs/builder-api.md still works:
the exact requests it makes (sendBeacon's `text/plain` simple request, and fetch's
preflight + JSON POST) from a listed origin, without the password."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import websockets.exceptions
from websockets.asyncio.client import connect

from builder_api.browser import host_allowed, split_host
from builder_api.config import load
from builder_api.server import build_api, serve
from testbed.builder_api import AUTH, write_config

pytestmark = pytest.mark.anyio
APP_ORIGIN = "http://localhost:5173"
DOCS = Path(__file__).parents[2] / "docs" / "builder-api.md"


@asynccontextmanager
async def browser_server(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace(
        'password = "', f'log_origins = ["{APP_ORIGIN}"]\nallowed_hosts = ["devbox.lan"]\npassword = "', 1))
    api = build_api(load("app", path, {}))
    async with anyio.create_task_group() as group:
        bound = await group.start(lambda task_status: serve(api, port=0, task_status=task_status))
        port = int(bound[0].rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.api = api
            yield client, port
        group.cancel_scope.cancel()


def test_host_names() -> None:
    assert split_host("[::1]:80") == ("[::1]", 80) and split_host("LOCALHOST") == ("localhost", None)
    assert split_host("x:99999999") == ("x", -1)
    assert host_allowed("127.0.0.1:6701", port=6701, bind="127.0.0.1", extra=())
    assert host_allowed("host.docker.internal:6701", port=6701, bind="127.0.0.1", extra=())
    assert not host_allowed("127.0.0.1:6702", port=6701, bind="127.0.0.1", extra=())
    assert not host_allowed("127.0.0.1", port=6701, bind="127.0.0.1", extra=())
    assert not host_allowed("evil.example:6701", port=6701, bind="127.0.0.1", extra=())
    assert host_allowed("devbox.lan:6701", port=6701, bind="127.0.0.1", extra=("devbox.lan",))
    assert host_allowed("10.0.0.5:6701", port=6701, bind="10.0.0.5", extra=())
    assert not host_allowed(None, port=6701, bind="127.0.0.1", extra=())


async def test_rebinding_and_cross_origin_requests_are_refused(tmp_path: Path) -> None:
    async with browser_server(tmp_path) as (client, port):
        # DNS rebinding: the page's own name arrives as Host — even with the password
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}"):
            refused = await client.get("/status", headers={**AUTH, "Host": host})
            assert refused.status_code == 403 and refused.json()["error"] == "host not allowed", host
            assert (await client.get("/", headers={"Host": host})).status_code == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"host.docker.internal:{port}", f"devbox.lan:{port}"):
            assert (await client.get("/status", headers={**AUTH, "Host": host})).status_code == 200, host
        # a page of any other origin: 403 before routing, never a CORS grant
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{port}", APP_ORIGIN + ".evil.example"):
            for method, path in (("GET", "/status"), ("POST", "/run"), ("POST", "/log"), ("GET", "/")):
                answer = await client.request(method, path, headers={**AUTH, "Origin": origin})
                assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers, (origin, path)
        # no-cors requests (img/script/form navigations) carry Sec-Fetch-Site instead
        sneaky = await client.post("/run", headers={**AUTH, "Sec-Fetch-Site": "cross-site"})
        assert sneaky.status_code == 403
        typed = await client.get("/status", headers={**AUTH, "Sec-Fetch-Site": "none"})  # the user's address bar
        assert typed.status_code == 200
        # the listed origin gets nothing but /log
        assert (await client.post("/run", headers={**AUTH, "Origin": APP_ORIGIN})).status_code == 403
        assert client.api.runtime.status()["running"] is False


async def test_preflights_grant_only_the_listed_origin_on_log(tmp_path: Path) -> None:
    async with browser_server(tmp_path) as (client, _):
        ask = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}
        granted = await client.options("/log", headers={**ask, "Access-Control-Request-Private-Network": "true"})
        assert granted.status_code == 204
        assert granted.headers["access-control-allow-origin"] == APP_ORIGIN and granted.headers["vary"] == "Origin"
        assert granted.headers["access-control-allow-headers"] == "Content-Type"  # never the password header
        assert granted.headers["access-control-allow-private-network"] == "true"
        assert "access-control-allow-credentials" not in granted.headers
        for path, origin in (("/run", APP_ORIGIN), ("/job/echo", APP_ORIGIN), ("/log", "https://evil.example")):
            refused = await client.options(path, headers={**ask, "Origin": origin})
            assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


async def test_bodies_must_be_json(tmp_path: Path) -> None:
    async with browser_server(tmp_path) as (client, _):
        body = json.dumps({"params": {"word": "hi"}})
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             None):
            headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
            for path in ("/job/echo", "/log", "/run"):
                answer = await client.post(path, content=body, headers=headers)
                assert answer.status_code == 415, (path, content_type)
        assert client.api.queue.snapshot()["total_history"] == 0
        ok = await client.post("/job/echo?dryrun", content=body,
                               headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200
        assert (await client.post("/stop", headers=AUTH)).status_code == 200  # no body, no type: fine


async def test_the_browser_snippet_requests(tmp_path: Path) -> None:
    """What the snippet in docs/builder-api.md sends, byte for byte in the parts that matter."""
    snippet = re.search(r"```html\n(.*?)```", DOCS.read_text(), re.S)
    assert snippet and "sendBeacon" in snippet.group(1) and "X-Builder-API-Password" not in snippet.group(1)
    async with browser_server(tmp_path) as (client, port):
        record = {"level": "error", "message": "TypeError: x is undefined", "source": "browser",
                  "url": f"{APP_ORIGIN}/page", "timestamp": 1.5}
        # navigator.sendBeacon(url, string): a no-preflight POST, text/plain, with Origin
        beacon = await client.post("/log", content=json.dumps(record), headers={
            "Origin": APP_ORIGIN, "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Site": "same-site",
            "Sec-Fetch-Mode": "no-cors"})
        assert beacon.status_code == 202 and beacon.headers["access-control-allow-origin"] == APP_ORIGIN
        # the fetch fallback: JSON after its preflight (above), still no password
        fetched = await client.post("/log", json={**record, "message": "second"},
                                    headers={"Origin": APP_ORIGIN, "Sec-Fetch-Site": "same-site"})
        assert fetched.status_code == 202
        events = (await client.get("/events?type=browser_log", headers=AUTH)).json()["events"]
        assert [e["message"] for e in events] == ["TypeError: x is undefined", "second"]
        assert events[0]["level"] == "error" and events[0]["url"] == f"{APP_ORIGIN}/page"
        # the same request from an unlisted origin, or without any origin and password, is refused
        assert (await client.post("/log", content=json.dumps(record), headers={
            "Origin": "https://evil.example", "Content-Type": "text/plain"})).status_code == 403
        assert (await client.post("/log", json=record)).status_code == 401


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the `websockets` client is asyncio-only


async def test_a_cross_origin_websocket_is_refused(tmp_path: Path) -> None:
    async with browser_server(tmp_path) as (client, port):
        for headers in ({**AUTH, "Origin": "https://evil.example"}, {**AUTH, "Origin": APP_ORIGIN}):
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 403
        async with connect(f"ws://127.0.0.1:{port}/ws?logs=,", additional_headers=AUTH) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
