"""Rigs of the builder-api tests: a configured server in-process (`api_server`), a project's
TOML for the standalone `llm-docker api` (`write_api_config`), and plain HTTP probes."""

from __future__ import annotations

import json
import typing
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx

from builder_api.config import load
from builder_api.server import build_api, serve
from testbed.processes import wait_until

PASSWORD = "s3cret-pw"
AUTH = {"X-Builder-API-Password": PASSWORD}


def write_config(tmp_path: Path, extra: str = "") -> Path:
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "logs" / "app.log").write_text("one\ntwo\nthree\n")
    path = tmp_path / "api" / "builder-api.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""
[verb.deploy]
platforms = ["web", "api", "ios"]
required_param = "platform"

[project.app]
root = "{root}"
port = 1
password = "{PASSWORD}"

[project.app.security]
auth_failures_per_min = 3
lockout_s = 30
max_body_bytes = 2048
max_url_bytes = 512
request_timeout_s = 2

[project.app.build]
dedupe_window_s = 5

[project.app.logs]
app = "logs/app.log"

[project.app.events]
path = "logs/events.jsonl"

[project.app.jobs.echo]
command = "echo"
args = ["{{word}}"]
placeholders.word = {{ regex = "[a-z]+", max_len = 10 }}

[project.app.jobs.sleep]
command = "sh"
args = ["-c", "sleep 100 & echo $! > child.pid; sleep 100; wait"]
timeout_s = 30

[project.app.jobs.fix]
command = "echo"
args = ["fixed"]
mutates_filesystem = true

[project.app.jobs.deploy.platforms.web]
command = "echo"
args = ["web"]

[project.app.runtime]
enabled = true
start_command = "sleep 100"
{extra}
""")
    return path


@asynccontextmanager
async def api_server(tmp_path: Path, extra: str = "") -> AsyncIterator[httpx.AsyncClient]:
    api = build_api(load("app", write_config(tmp_path, extra), {}))
    async with anyio.create_task_group() as group:
        bound = await group.start(lambda task_status: serve(api, port=0, task_status=task_status))
        async with httpx.AsyncClient(base_url=f"http://{bound[0]}", timeout=30, headers=AUTH) as client:
            setattr(client, "api", api)  # noqa: B010 - the tests reach the app through the client: client.api
            yield client
        group.cancel_scope.cancel()



def write_api_config(path: Path, root: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
[project.app]
root = "{root}"
port = {port}
password = "pw"
[project.app.jobs.spawn]
command = "sh"
args = ["-c", "sleep 300 & echo $! > build-child.pid; sleep 300; wait"]
[project.app.runtime]
enabled = true
start_command = "sh -c 'sleep 300 & echo $! > runtime-child.pid; wait'"
""")


def call(port: int, method: str, path: str) -> dict[str, typing.Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"X-Builder-API-Password": "pw"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, typing.Any] = json.loads(response.read())
        return answer


def wait_for(condition: Callable[[], bool]) -> None:
    wait_until(condition, timeout=20)


def serving(port: int) -> bool:
    try:
        call(port, "GET", "/")
    except (urllib.error.URLError, ConnectionError, OSError):
        return False
    return True
