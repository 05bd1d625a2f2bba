"""builder-api's auth cannot be turned against the user: the right password always passes,
failures slow only their own source (one at a time, doubling delays, no lock-out), an empty
or unexpanded password refuses to start unless `auth = "none"` is explicit (then warned),
and `${VAR}` expands from `$LLM_DOCKER_HOME/.env` for the server and the container alike."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest

from builder_api.auth import AuthGate, backoff_delay
from builder_api.config import ConfigError, load
from testbed.builder_api import AUTH, api_server, wait_for
from testbed.processes import command, free_port, launcher_env, run

WRONG = {"X-Builder-API-Password": "wrong"}


def test_the_delay_doubles_past_the_threshold_up_to_the_cap() -> None:
    assert [backoff_delay(n, 3, 5.0) for n in range(1, 10)] == [0, 0, 0, 0.25, 0.5, 1, 2, 4, 5]
    assert backoff_delay(10_000, 3, 5.0) == 5.0


@pytest.mark.anyio
async def test_the_right_password_is_never_delayed_and_failures_queue_per_source() -> None:
    gate = AuthGate(lambda: "pw", threshold=1, max_delay_s=0.3)
    assert (await gate.check("a", "x", required=True)).delay_s == 0  # within the threshold
    started = time.monotonic()
    verdicts = []
    async with anyio.create_task_group() as group:
        async def fail() -> None:
            verdicts.append(await gate.check("a", "x", required=True))

        for _ in range(4):
            group.start_soon(fail)
        await anyio.sleep(0.05)
        right = time.monotonic()
        assert (await gate.check("a", "pw", required=True)).status == 0  # same source, right password
        assert (await gate.check("b", "x", required=True)).delay_s == 0  # another source: its own count
        assert time.monotonic() - right < 0.05
    # four failures one at a time: 0.25 + 0.3 + 0.3 + 0.3 s, not 0.3 s side by side
    assert time.monotonic() - started >= 1.0
    assert all(v.status == 401 for v in verdicts) and sum(v.backoff_started for v in verdicts) == 1
    assert (await gate.check("a", None, required=False)).status == 0


@pytest.mark.anyio
async def test_a_flood_of_wrong_passwords_does_not_lock_out_or_slow_the_user(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:  # auth_failures_per_min = 3, read timeout 2 s → cap 1 s
        base = client.base_url
        async with httpx.AsyncClient(base_url=base, timeout=30) as attacker:
            async with anyio.create_task_group() as group:
                for _ in range(30):
                    group.start_soon(functools.partial(attacker.post, "/stop", headers=WRONG))
                await anyio.sleep(0.3)
                for _ in range(5):  # the flood is still queued: the user is answered at once
                    started = time.monotonic()
                    assert (await client.get("/status")).status_code == 200
                    assert (await client.post("/stop", headers=AUTH)).status_code == 200
                    assert time.monotonic() - started < 0.5
                group.cancel_scope.cancel()
            assert (await attacker.get("/")).status_code == 200  # never locked out, not even the attacker
        assert (await client.get("/queue")).status_code == 200


def write_api(path: Path, project: Path, port: int, lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[project.app]\nroot = "{project}"\nport = {port}\n{lines}\n')
    return path


@pytest.mark.parametrize("lines", ['password = ""', 'password = "${BUILDER_API_TEST_UNSET}"', "",
                                   'password = "${lowercase}"', 'auth = "password"'])
def test_an_empty_or_unexpanded_password_refuses_to_start(project: Path, user_home: Path, lines: str) -> None:
    config = write_api(user_home / "api" / "builder-api.toml", project, free_port(), lines)
    result = run("llm-docker", "api", "--project", "app", "--config", str(config), cwd=project, home=user_home)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "password is empty or unexpanded" in result.stderr and 'auth = "none"' in result.stderr
    if "UNSET" in lines:
        assert "BUILDER_API_TEST_UNSET set neither in the environment nor in $LLM_DOCKER_HOME/.env" in result.stderr


def test_auth_none_is_explicit_loopback_only_and_warned(project: Path, user_home: Path) -> None:
    port = free_port()
    config = write_api(user_home / "api" / "builder-api.toml", project, port, 'auth = "none"')
    server = subprocess.Popen(command("llm-docker", "api", "--project", "app", "--config", str(config)),
                              cwd=project, env=launcher_env(user_home), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _status(port, {}) == 200)  # open: no password needed
    finally:
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=30)[1]
    assert 'auth = "none": NO PASSWORD' in stderr
    with pytest.raises(ConfigError, match="refused on bind 0.0.0.0"):
        load("app", write_api(config, project, port, 'auth = "none"\nbind = "0.0.0.0"'), {})
    with pytest.raises(ConfigError, match="auth must be one of"):
        load("app", write_api(config, project, port, 'auth = "off"'), {})


def _status(port: int, headers: dict[str, str]) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", headers=headers, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_a_password_in_dotenv_is_used_by_the_server_and_the_container(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir(exist_ok=True)
    (state / ".env").write_text("BUILDER_API_PASSWORD='from-dotenv-7f3'\n")
    (state / ".env").chmod(0o600)
    port = free_port()
    config = write_api(state / "api_config" / "builder-api.toml", project, port,
                       'password = "${BUILDER_API_PASSWORD}"')
    assert load("app", config, {"HOME": str(user_home)}).password == "from-dotenv-7f3"
    assert load("app", config, {"HOME": str(user_home), "BUILDER_API_PASSWORD": "env-wins"}).password == "env-wins"
    # the launcher hands the container that very password (a secret: never in the Env)
    dry = json.loads(run("cld", "-a", "--dry-run", "--show-secrets", cwd=project, home=user_home).stdout)
    assert dry["secrets"]["BUILDER_API_PASSWORD"] == "from-dotenv-7f3"
    assert f"BUILDER_API_PORT={port}" in dry["create"]["Env"]
    # ... and `llm-docker api` checks it (before: it expanded to "" and ran with no auth)
    server = subprocess.Popen(command("llm-docker", "api", "--project", "app"), cwd=project,
                              env=launcher_env(user_home), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _status(port, {"X-Builder-API-Password": "from-dotenv-7f3"}) == 200)
        assert _status(port, {}) == 401
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0


def test_the_containers_password_is_the_servers_even_if_dotenv_differs(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir(exist_ok=True)
    (state / ".env").write_text("BUILDER_API_PASSWORD=some-other-value\n")
    (state / ".env").chmod(0o600)
    write_api(state / "api_config" / "builder-api.toml", project, free_port(), 'password = "literal-pw"')
    dry = json.loads(run("cld", "-a", "--dry-run", "--show-secrets", cwd=project, home=user_home).stdout)
    assert dry["secrets"]["BUILDER_API_PASSWORD"] == "literal-pw"
