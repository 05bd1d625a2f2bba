"""builder-api conformance over a real server on loopback (hypercorn), on asyncio and trio:
upstream's status codes and JSON shapes (docs/upstream.md#wire-protocol), auth and back-off, the queue
through HTTP, logs, events, /log, the runtime, and slow or oversized clients. The client
sends the password by default (every endpoint but `GET /` needs it); `anonymous(client)`
is one that does not."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx
import pytest

from testbed.builder_api import AUTH, PASSWORD, api_server

pytestmark = pytest.mark.anyio
def anonymous(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client of the same server without the password."""
    return httpx.AsyncClient(base_url=client.base_url, timeout=30)


async def test_root_unknown_paths_methods_and_cors(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        root = await client.get("/")
        assert root.status_code == 200 and root.headers["server"] == "builder-api/0.1"
        assert root.headers["content-type"] == "application/json"
        assert set(root.json()) == {"name", "version", "port", "bind", "uptime_s"} and root.json()["version"] == "0.1"
        assert (await client.get("/jobs/")).json() == {"error": "not found", "path": "/jobs/"}
        assert (await client.get("/jobs/")).status_code == 404
        put = await client.put("/status")
        assert put.status_code == 405 and put.headers["allow"] == "GET, POST, DELETE, OPTIONS"
        options = await client.options("/anything")  # no Origin: not a preflight, no CORS grant
        assert options.status_code == 204 and "access-control-allow-origin" not in options.headers
        assert "access-control-allow-origin" not in (await client.get("/status")).headers
        too_long = await client.get("/status?x=" + "a" * 600)
        assert too_long.status_code == 414 and too_long.json() == {"error": "URI too long"}
        assert (await client.get("/openapi.json")).json()["openapi"] == "3.1.0"
        keepalive = [await client.get("/") for _ in range(3)]
        assert all(r.http_version == "HTTP/1.1" for r in keepalive)


async def test_auth_header_key_and_backoff(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, anonymous(client) as anon:
        assert (await anon.get("/status")).status_code == 401  # reads need the password too (the cage is local)
        assert (await anon.get("/openapi.json")).status_code == 401
        assert (await anon.post("/stop")).json() == {"error": "authentication required"}
        assert (await anon.post("/stop", headers=AUTH)).status_code == 200
        assert (await anon.post(f"/stop?key={PASSWORD}")).status_code == 200
        wrong_header = await anon.post(f"/stop?key={PASSWORD}", headers={"X-Builder-API-Password": "nope"})
        assert wrong_header.status_code == 401  # a non-empty header is the only credential consulted
        for _ in range(3):  # auth_failures_per_min = 3: the 4th and 5th failures are slowed down
            assert (await anon.post("/stop", headers={"X-Builder-API-Password": "x"})).status_code == 401
        started = time.monotonic()
        assert (await anon.get("/status", headers={"X-Builder-API-Password": "x"})).status_code == 401
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        assert (await anon.post("/stop", headers=AUTH)).status_code == 200  # never locked out
        assert (await anon.get("/status", headers=AUTH)).status_code == 200
        assert time.monotonic() - started < 0.2  # and never slowed down
        assert (await anon.get("/")).status_code == 200
        slowed = client.api.events.query(event_type="auth_backoff")["events"]
        assert len(slowed) == 1 and slowed[0]["threshold"] == 3 and slowed[0]["window_s"] == 60


async def test_jobs_catalogue(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        body = (await client.get("/jobs")).json()
        assert list(body["jobs"]) == ["echo", "sleep", "fix", "deploy"]
        assert body["jobs"]["echo"]["placeholders"] == {"word": {"regex": "[a-z]+", "max_len": 10, "required": True}}
        assert body["jobs"]["deploy"]["platforms"]["web"]["args_template"] == ["web"]
        assert body["verbs"]["deploy"]["implemented_platforms"] == ["web"]
        assert body["config_version"] == "0.4" and body["project"] == "app"


async def test_a_job_from_post_to_done(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        posted = await client.post("/job/echo", json={"params": {"word": "hello"}},
                                   headers={**AUTH, "X-Agent-ID": "agent-7"})
        assert posted.status_code == 202
        entry = posted.json()
        assert entry["queue_id"] == entry["id"] and entry["agent_id"] == "agent-7" and entry["args"] == ["hello"]
        assert entry["command"].endswith("/echo") and entry["job_name"] == "echo"
        again = await client.post("/job/echo", json={"params": {"word": "hello"}}, headers=AUTH)
        assert again.json()["id"] == entry["id"]  # dedupe
        done = (await client.get(f"/build_status?id={entry['id']}&wait=10")).json()
        assert done["status"] == "done" and done["returncode"] == 0 and done["log_tail"].endswith("hello")
        assert (done["poll_timed_out"], done["build_timed_out"], done["timed_out"]) == (False, False, False)
        gone = (await client.get("/build_status?id=nope")).json()
        assert gone == {"id": "nope", "status": "gone", "poll_timed_out": False, "build_timed_out": False,
                        "timed_out": False}
        assert (await client.get("/build_status")).json() == {"error": "missing id param"}
        assert (await client.get("/build_status?id=x&wait=soon")).status_code == 400
        history = (await client.get("/queue")).json()
        assert history["current"] is None and history["total_history"] == 1
        assert "log_tail" not in history["history"][0]
        events = (await client.get("/events?type=job_finished")).json()
        assert events["count"] == 1 and events["events"][0]["job"] == "echo"


async def test_job_errors_have_the_upstream_shapes(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        unknown = await client.post("/job/e%63ho", headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "unknown_job", "name": "e%63ho",
                                  "available": ["deploy", "echo", "fix", "sleep"]}
        invalid = await client.post("/job/echo", json={"params": {"word": "UPPER"}}, headers=AUTH)
        assert invalid.status_code == 400 and invalid.json() == {
            "error": "validation_failed", "endpoint": "/job/echo", "field": "word", "reason": "regex_mismatch",
            "expected": "[a-z]+", "value_preview": "'UPPER'"}
        json_type = {**AUTH, "Content-Type": "application/json"}
        bad_json = await client.post("/job/echo", content=b"{bad", headers=json_type)
        assert bad_json.status_code == 400 and bad_json.json() == {"error": "invalid JSON body"}
        huge = await client.post("/job/echo", content=b"x" * 4096, headers=json_type)
        assert huge.status_code == 413 and huge.json() == {"error": "request body too large"}
        dry = await client.post("/job/echo?dryrun", json={"params": {"word": "hi"}}, headers=AUTH)
        assert dry.status_code == 200 and dry.json()["dryrun"] is True and dry.json()["would_run"][1:] == ["hi"]
        assert (await client.get("/queue")).json()["total_history"] == 0  # a dry run queues nothing
        mutation = await client.post("/job/fix", headers=AUTH)
        assert mutation.status_code == 428 and mutation.json()["error"] == "mutation_confirmation_required"
        assert (await client.post("/job/fix?confirm=YES", headers=AUTH)).status_code == 202
        missing = await client.post("/job/deploy", headers=AUTH)
        assert missing.status_code == 400 and missing.json()["error"] == "missing_param"
        assert missing.json()["param"] == "platform" and missing.json()["implemented_platforms"] == ["web"]
        undeclared = await client.post("/job/deploy?platform=tv", headers=AUTH)
        assert undeclared.status_code == 400 and undeclared.json()["error"] == "platform_not_declared"
        unimplemented = await client.post("/job/deploy?platform=ios", headers=AUTH)
        assert unimplemented.status_code == 404 and unimplemented.json()["error"] == "verb_not_implemented"
        web = await client.post("/job/deploy?platform=web", headers=AUTH)
        assert web.status_code == 202 and web.json()["args"] == ["web"] and web.json()["platform"] == "web"
        removed = await client.post("/build", headers=AUTH)
        assert removed.status_code == 410 and removed.json()["use"] == "POST /job/<name>"


async def test_cancel_pending_and_running_kill_the_group(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        running = (await client.post("/job/sleep", headers=AUTH)).json()
        pending = (await client.post("/job/echo", json={"params": {"word": "later"}}, headers=AUTH)).json()
        pid_file = tmp_path / "project" / "child.pid"
        with anyio.fail_after(10):
            while not pid_file.exists() or not pid_file.read_text().strip():
                await anyio.sleep(0.05)
        child = int(pid_file.read_text())
        assert (await client.delete("/queue/", headers=AUTH)).json() == {"error": "missing queue id"}
        assert (await client.delete(f"/queue/{running['id']}", headers=AUTH)).status_code == 404
        cancelled = await client.delete(f"/queue/{pending['id']}", headers=AUTH)
        assert cancelled.json() == {"ok": True, "cancelled": pending["id"]}
        started = time.monotonic()
        polled = (await client.get(f"/build_status?id={running['id']}&wait=0.5")).json()
        assert polled["poll_timed_out"] is True and polled["timed_out"] is True and polled["status"] == "building"
        assert 0.4 < time.monotonic() - started < 5
        current = await client.delete("/current/cancel", headers=AUTH)
        assert current.status_code == 200
        assert current.json() == {"ok": True, "cancelled": running["id"], "job_name": "sleep", "status": "cancelled",
                                  "returncode": -15}
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]
        assert (await client.delete("/current/cancel", headers=AUTH)).json() == {"error": "no_current_build"}


async def test_logs_events_and_the_browser_log(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        missing = await client.get("/logs")
        assert missing.status_code == 400 and missing.json() == {"error": "missing file param", "available": ["app"]}
        assert (await client.get("/logs?file=nope")).status_code == 404
        tail = (await client.get("/logs?file=app&n=2")).json()
        assert tail == {"file": "app", "lines": 2, "text": "two\nthree"}
        assert (await client.get("/logs?file=app&n=0")).json()["text"] == "three"
        assert (await client.get("/logs?file=app&n=x")).json() == {"error": "invalid n", "value": "x"}
        stored = await client.post("/log", json={"message": "boom", "level": "warning", "source": "My-App",
                                                 "timestamp": "12.5", "lineno": 3}, headers=AUTH)
        assert stored.status_code == 202 and stored.json() == {"ok": True}
        assert "access-control-allow-origin" not in stored.headers  # CORS only for log_origins (browser tests)
        refused = await client.post("/log", json={"message": ""}, headers=AUTH)
        assert refused.status_code == 400
        async with anonymous(client) as anon:
            assert (await anon.post("/log", json={"message": "x"})).status_code == 401
        events = (await client.get("/events?type=my-app_log")).json()
        assert events["count"] == 1
        record = events["events"][0]
        assert (record["level"], record["source"], record["client_ts"]) == ("log", "my-app", 12.5)
        assert "lineno" not in record
        since = (await client.get(f"/events?since={time.time() + 60}")).json()
        assert since["count"] == 0 and since["total"] >= 1


async def test_the_runtime(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        first = (await client.post("/run", headers=AUTH)).json()
        assert first["ok"] is True
        status = (await client.get("/status")).json()
        assert status["runtime"]["running"] is True and status["runtime"]["pid"] == first["pid"]
        second = (await client.post("/run", headers=AUTH)).json()
        assert second["pid"] != first["pid"]
        assert not Path(f"/proc/{first['pid']}").exists() or "Z" in Path(f"/proc/{first['pid']}/stat").read_text()
        assert (await client.post("/stop", headers=AUTH)).json() == {"ok": True, "running": False}
        assert (await client.get("/status")).json()["runtime"]["running"] is False
        causes = [e["cause"] for e in (await client.get("/events?type=runtime_stopped")).json()["events"]]
        assert causes == ["restart", "api_stop"]


async def test_http_call_events_never_carry_the_password(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        from builder_api.events import Mailbox

        mailbox = Mailbox()
        with client.api.events.subscribe(mailbox):
            async with anonymous(client) as anon:
                await anon.get(f"/jobs?key={PASSWORD}")
                await anon.post("/stop", headers={"X-Agent-ID": "a1"})
            calls = []
            with anyio.fail_after(5):  # appended right after each response went out
                while len(calls) < 2:
                    record = (await mailbox.get())["record"]
                    if record["type"] == "http_call":
                        calls.append(record)
        assert calls[0]["query"] == {"key": "<redacted>"} and calls[0]["summary"] == "4 jobs"
        assert PASSWORD not in json.dumps(calls)
        assert calls[1]["status"] == 401 and "agent_id" not in calls[1]


async def test_a_slowloris_client_is_cut_off(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        host, port = str(client.base_url.host), client.base_url.port
        stream = await anyio.connect_tcp(host, port)
        await stream.send(f"POST /log HTTP/1.1\r\nHost: {host}:{port}\r\nX-Builder-API-Password: {PASSWORD}"
                          "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess".encode())
        started = time.monotonic()
        with anyio.fail_after(10):
            received = b""
            try:
                while chunk := await stream.receive():
                    received += chunk
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                pass
        assert time.monotonic() - started < 8
        assert b"408" in received or received == b""
        assert (await client.get("/")).status_code == 200  # others were never stalled


async def test_hot_reload_applies_jobs_password_and_aliases(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        from builder_api.events import Mailbox

        config = tmp_path / "api" / "builder-api.toml"
        mailbox = Mailbox()
        with client.api.events.subscribe(mailbox):
            text = config.read_text().replace(PASSWORD, "new-pw")
            text = text.replace('app = "logs/app.log"', 'app = "logs/app.log"\nnew = "logs/new.log"')
            config.write_text(text + '\n[project.app.jobs.added]\ncommand = "true"\n')
            with anyio.fail_after(10):
                while (record := (await mailbox.get())["record"])["type"] != "config_reloaded":
                    pass
            assert record["added"] == ["added"] and record["removed"] == [] and record["total_jobs"] == 5
            assert (await client.post("/stop", headers=AUTH)).status_code == 401
            assert (await client.post("/stop", headers={"X-Builder-API-Password": "new-pw"})).status_code == 200
            assert (await client.get("/logs", headers={"X-Builder-API-Password": "new-pw"})).json()["available"] == [
                "app", "new"]
            config.write_text("[project.app]\nport = 'broken'\n")
            with anyio.fail_after(10):
                while (record := (await mailbox.get())["record"])["type"] != "config_reload_failed":
                    pass
            assert record["code"] == 2
            assert "added" in (await client.get("/jobs", headers={"X-Builder-API-Password": "new-pw"})).json()["jobs"]


async def test_a_client_stalling_in_its_headers_is_cut_off(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        stream = await anyio.connect_tcp(str(client.base_url.host), client.base_url.port)
        await stream.send(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        with anyio.fail_after(15):
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                pass
        assert time.monotonic() - started < 12  # request_timeout_s = 2 in this config
        assert (await client.get("/")).status_code == 200


def test_the_events_file_drops_its_oldest_lines_when_full(tmp_path: Path) -> None:
    from builder_api.config import EventSettings
    from builder_api.events import EventStore

    store = EventStore(EventSettings(tmp_path / "events.jsonl", max_bytes=4000, drop_bytes=1000))
    for number in range(100):
        store.append("tick", {"n": number, "pad": "x" * 50})
    text = (tmp_path / "events.jsonl").read_text()
    assert len(text.encode()) <= 4000
    numbers = [json.loads(line)["n"] for line in text.splitlines()]
    assert numbers == list(range(numbers[0], 100)) and numbers[0] > 0  # whole lines, oldest gone, in order
