"""builder-api's `/ws` with a standard WebSocket client (`websockets`): handshake (HTTP/1.1
101, JSON 401 on bad auth), hello, event/log/status frames, commands, and a stalled client
that loses its oldest frames without stalling anybody else."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
import websockets.exceptions
from websockets.asyncio.client import connect

from testbed.builder_api import AUTH, PASSWORD, api_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the `websockets` client is asyncio-only; the server side is tested on trio via HTTP


def ws_url(client) -> str:
    return f"ws://{client.base_url.host}:{client.base_url.port}/ws"


async def next_frame(socket, kind: str, timeout: float = 10) -> dict:
    with anyio.fail_after(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == kind:
                return frame


async def test_handshake_hello_events_logs_and_commands(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with connect(ws_url(client)):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body) == {"error": "authentication required"}
        async with connect(ws_url(client) + "?logs=app,nope", additional_headers=AUTH) as socket:
            assert json.loads(await socket.recv()) == {"type": "hello", "logs": ["app"], "heartbeat_s": 5.0}
            await client.post("/job/echo", json={"params": {"word": "wsjob"}}, headers=AUTH)
            enqueued = await next_frame(socket, "event")
            assert enqueued["record"]["type"] in ("job_enqueued", "http_call")
            with (tmp_path / "project" / "logs" / "app.log").open("a") as log:
                log.write("fresh line\npartial")
            frame = await next_frame(socket, "log")
            assert frame == {"type": "log", "file": "app", "line": "fresh line"}
            await socket.send(json.dumps({"cmd": "status"}))
            status = await next_frame(socket, "status")
            assert set(status) == {"type", "runtime", "current_build"}
            await socket.send(json.dumps({"cmd": "queue"}))
            assert "pending" in await next_frame(socket, "queue")
            await socket.send(json.dumps({"cmd": "events", "type": "job_enqueued", "n": 5}))
            events = await next_frame(socket, "events")
            assert events["count"] == 1, events  # the one job posted above
            assert [event["type"] for event in events["events"]] == ["job_enqueued"]
            await socket.send(json.dumps({"cmd": "bogus"}))
            assert (await next_frame(socket, "error"))["error"] == "unknown cmd: 'bogus'"
            await socket.send("[1]")  # upstream's session died on this
            await socket.send(json.dumps({"cmd": "status"}))
            assert (await next_frame(socket, "error"))["type"] == "error"
        async with connect(ws_url(client) + f"?key={PASSWORD}&logs=,") as socket:
            assert json.loads(await socket.recv())["logs"] == []


async def test_a_stalled_client_stalls_nobody(tmp_path: Path) -> None:
    """A client that reads nothing (a small receive window, a queue of 1) does not slow the
    others down. Its own frames are not lost either: the server's send does not wait for it
    (hypercorn buffers them), so its bounded mailbox never fills — measured here
    (`Mailbox.dropped` stays 0); the mailbox's drop-oldest rule is tested in
    test_builder_api_queue.py."""
    async with api_server(tmp_path) as client:
        api = client.api
        small = socket.socket()  # a small receive window (no autotuning): the stalled client's buffers fill soon
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        small.connect((client.base_url.host, client.base_url.port))
        small.setblocking(False)
        stalled = await connect(ws_url(client) + "?logs=,", additional_headers=AUTH, sock=small,
                                max_queue=1, ping_interval=None, proxy=None, close_timeout=1)
        fast = await connect(ws_url(client) + "?logs=,", additional_headers=AUTH, max_queue=None, proxy=None)
        try:
            await fast.recv()  # hello
            payload = "x" * 16000  # 2000 frames, 32 MB: more than the socket buffers hold
            received = 0
            async with anyio.create_task_group() as group:
                async def read_all() -> None:
                    nonlocal received
                    while received < 2000:
                        frame = json.loads(await fast.recv())
                        if frame["type"] == "event" and frame["record"]["type"] == "burst":
                            received += 1

                group.start_soon(read_all)
                for number in range(2000):
                    api.events.append("burst", {"n": number, "pad": payload}, persist=False)
                    if number % 50 == 0:
                        await anyio.sleep(0)
                with anyio.fail_after(20):
                    while received < 2000:
                        await anyio.sleep(0.05)
            assert received == 2000  # the fast client got every frame
            assert (await client.get("/")).status_code == 200
            seen: list[int] = []
            with anyio.fail_after(30):
                while not seen or seen[-1] != 1999:
                    frame = json.loads(await stalled.recv())
                    if frame["type"] == "event" and frame["record"]["type"] == "burst":
                        seen.append(frame["record"]["n"])
            assert seen == list(range(2000)), (len(seen), seen[:5])
            assert [mailbox.dropped for mailbox in api.events._subscribers] == [0, 0]
        finally:
            await fast.close()
            await stalled.close()
