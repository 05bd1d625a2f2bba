"""builder-api attacked from a real cage: the busybox test image's fake agent (`--fake-sh`)
runs wget against a real `llm-docker api`, both started as the unprivileged user, over the
cage's host networking. A burst of 100 wrong passwords never locks the user out nor slows
their right password; forged Host (rebinding) and Origin headers get 403, a `text/plain`
body 415, and the cage's own `host.docker.internal:PORT` Host keeps working."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from testbed.processes import field, free_port, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]
PASSWORD = "cage-test-correct-4b1d"


def attack(port: int) -> str:
    base = f"http://host.docker.internal:{port}"  # the cage's only way to the host: a granted port
    get = "timeout 20 wget -q -O /dev/null"
    status = "2>&1 | grep -q 'HTTP/1.1 {code}' && echo {word}"
    json_type = "--header 'Content-Type: application/json'"
    return " ; ".join([
        # 100 wrong passwords, as fast as the server answers them
        f"n=0; ok=0; while [ $n -lt 100 ]; do {get} --header 'X-Builder-API-Password: wrong-$n' {base}/status "
        "|| ok=$((ok+1)); n=$((n+1)); done; echo REFUSED401:$ok",
        # DNS rebinding: a page's own name as Host, even with the right password
        f"timeout 20 wget -O /dev/null --header 'Host: evil.example:{port}' --header 'X-Builder-API-Password: "
        f"{PASSWORD}' {base}/status " + status.format(code=403, word="REFUSED:rebinding"),
        # a cross-origin page's request, even with the right password
        f"timeout 20 wget -O /dev/null --header 'Origin: https://evil.example' --header "
        f"'X-Builder-API-Password: {PASSWORD}' --post-data '' {json_type} {base}/run "
        + status.format(code=403, word="REFUSED:origin"),
        # a simple-request body (text/plain) to a JSON endpoint
        f"timeout 20 wget -O /dev/null --header 'Content-Type: text/plain' --header 'X-Builder-API-Password: "
        f"{PASSWORD}' --post-data '{{\"params\":{{}}}}' {base}/job/touch "
        + status.format(code=415, word="REFUSED:415"),
        # the cage's own client sends exactly this Host
        f"timeout 20 wget -q -O - --header 'X-Builder-API-Password: {PASSWORD}' "
        f"http://host.docker.internal:{port}/status | grep -q '\"name\": \"app\"' && echo WORKS:host-docker-internal",
    ])


def test_the_cage_cannot_lock_out_the_user_nor_pass_as_a_browser(user: User) -> None:
    port = free_port()
    project = user.project("app")
    marker = project / "touched"
    user.write(user.state_home / "api_config" / "builder-api.toml", f"""
[project.app]
root = "{project}"
port = {port}
password = "${{BUILDER_API_PASSWORD}}"
[project.app.security]
auth_backoff_max_s = 0.2
[project.app.events]
path = "events.jsonl"
[project.app.jobs.touch]
command = "touch"
args = ["{marker}"]
""")
    user.write(user.state_home / ".env", f"BUILDER_API_PASSWORD={PASSWORD}\n", mode=0o600)
    conf = user.state_home / "llm-docker.conf"
    user.write(conf, conf.read_text() + f"HOST_PORTS={port}\n", mode=0o600)  # the policy grants the API's port
    server = user.popen("llm-docker", "api", "--project", "app", cwd=project, stderr=subprocess.PIPE, text=True)
    right = {"X-Builder-API-Password": PASSWORD}

    def answer(path: str) -> tuple[int, float]:
        started = time.monotonic()
        try:
            code = httpx.get(f"http://127.0.0.1:{port}{path}", headers=right, timeout=10).status_code
        except httpx.HTTPError:
            code = 0
        return code, time.monotonic() - started

    try:
        wait_until(lambda: answer("/status")[0] == 200, timeout=30)
        launch = user.popen("cld", "--", "-p", "x", "--fake-sh", attack(port), cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # during the burst: the first slowed failure is an event, read with the right password
            wait_until(lambda: launch.poll() is not None or bool(httpx.get(
                f"http://127.0.0.1:{port}/events?type=auth_backoff", headers=right, timeout=10).json()["events"]),
                timeout=90)
            during = [answer("/status") for _ in range(5)]
            still_attacking = launch.poll() is None
            stdout, stderr = launch.communicate(timeout=240)
        finally:
            if launch.poll() is None:
                launch.kill()
        assert launch.returncode == 0, stderr
        assert still_attacking, "the burst ended before the user's calls: nothing was proven"
        assert all(code == 200 and seconds < 1.0 for code, seconds in during), during
        assert field(stdout, "REFUSED401") == ["100"], stdout
        assert set(field(stdout, "REFUSED")) == {"rebinding", "origin", "415"}, stdout
        assert field(stdout, "WORKS") == ["host-docker-internal"], stdout
        assert answer("/status")[0] == 200 and answer("/queue")[0] == 200  # after the burst
        assert not marker.exists()  # the text/plain job request never ran
    finally:
        server.terminate()
        server.wait(timeout=30)
