"""The agent's importable client (`builder_api_client`, shipped in the image beside the
`builder-api` command) against a real `llm-docker api`: typed calls, errors as ApiError."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.builder_api import serving, wait_for, write_api_config
from testbed.processes import command, free_port, launcher_env

CLIENT_DIR = Path(__file__).parents[2] / "image/files/rootfs/usr/lib/python3/dist-packages"
sys.path.insert(0, str(CLIENT_DIR))

from builder_api_client import ApiError, Client  # noqa: E402 - importable only once CLIENT_DIR is on the path


@pytest.fixture
def server(project: Path, user_home: Path) -> Iterator[int]:
    port = free_port()
    config = user_home / "api" / "builder-api.toml"
    write_api_config(config, project, port)
    with config.open("a") as handle:
        handle.write('[project.app.jobs.greet]\ncommand = "echo"\nargs = ["hello", "{who}"]\n'
                     'placeholders.who = { regex = "[a-z]+" }\n[project.app.logs]\napp = "app.log"\n'
                     '[project.app.events]\npath = "events.jsonl"\n')
    (project / "app.log").write_text("one\ntwo\n")
    process = subprocess.Popen(command("llm-docker", "api", "--project", "app", "--config", str(config)),
                               cwd=project, env=launcher_env(user_home), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: serving(port))
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_python_client(server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_API_HOST", "127.0.0.1")
    monkeypatch.setenv("BUILDER_API_PORT", str(server))
    monkeypatch.setenv("BUILDER_API_PASSWORD", "pw")
    monkeypatch.setenv("BUILDER_AGENT_ID", "py-client")
    api = Client()
    assert api.identity()["name"] == "app"
    assert "greet" in api.jobs()["jobs"]
    done = api.run("greet", {"who": "world"})
    assert done["status"] == "done" and done["log_tail"].endswith("hello world") and done["agent_id"] == "py-client"
    assert api.submit("greet", {"who": "dry"}, dry_run=True)["would_run"][1:] == ["hello", "dry"]
    with pytest.raises(ApiError) as refused:
        api.submit("greet", {"who": "UPPER"})
    assert refused.value.status == 400 and refused.value.detail["reason"] == "regex_mismatch"
    assert api.logs("app", n=1) == "two"
    api.log("from the agent", level="warn")
    assert [e["message"] for e in api.events(type="agent_log")] == ["from the agent"]
    assert [e["job"] for e in api.events(type="job_finished")] == ["greet"]
    assert api.queue()["total_history"] == 1 and api.status()["name"] == "app"
    with pytest.raises(ApiError) as wrong:
        Client(password="nope").status()
    assert wrong.value.status == 401
    with pytest.raises(ApiError) as unreachable:
        Client(port=free_port()).status()
    assert unreachable.value.status is None and "cannot reach" in str(unreachable.value)
