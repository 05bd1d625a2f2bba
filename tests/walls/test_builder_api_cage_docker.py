"""builder-api attacked from a real cage: the agent (the test image's fake agent, `--fake-sh`)
talks to a real `llm-docker api` on the host's loopback with busybox `wget`, and rearranges
the project folder it can write, as a hostile agent would.

Both run as the unprivileged test user (a dedicated uid in the docker group). Afterwards the test
checks the host: no host file's content reached the agent, nothing was written outside the
allowed roots (the user's `.bashrc`, a dangling symlink's target), no payload ran (each
would create a marker under the user's home, a path that does not exist in the cage).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.builder_api import serving, wait_for
from testbed.processes import field, free_port
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- cage-test-secret"
HOST_SECRETS = {"SSH_AUTH_SOCK": "/tmp/ssh-cage-test/agent.sock", "AWS_SECRET_ACCESS_KEY": "aws-cage-test-secret",
                "GITHUB_TOKEN": "ghp-cage-test-secret", "GOOGLE_APPLICATION_CREDENTIALS": "/gcp-cage-test.json"}
ORIGINAL = "#!/bin/bash\nsleep 2\necho ORIGINAL-END\n"


def call(port: int, path: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-Builder-API-Password": "pw"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextmanager
def api(user: User, project: Path, port: int, body: str) -> Iterator[Path]:
    """`llm-docker api` as the user, with the host's secrets in its own environment."""
    config = user.write(user.home / "api" / "builder-api.toml",
                        f'[project.app]\nroot = "{project}"\nport = {port}\npassword = "pw"\n{body}')
    grant_host_port(user, port)
    server = user.popen("llm-docker", "api", "--project", "app", "--config", str(config), cwd=project,
                        env=HOST_SECRETS, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: serving(port))
        yield config
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
        assert b"Traceback" not in stderr, stderr


def grant_host_port(user: User, port: int) -> None:
    """The cage reaches the host only where the network policy grants it (HOST_PORTS), as
    `host.docker.internal:PORT` — as a user's agent reaches a standalone `llm-docker api`."""
    conf = user.state_home / "llm-docker.conf"
    user.write(conf, conf.read_text() + f"HOST_PORTS={port}\n", mode=0o600)


def agent(user: User, project: Path, script: str) -> subprocess.CompletedProcess[str]:
    result = user.run("cld", "--", "-p", "x", "--fake-sh", script, cwd=project, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "SH:0" in result.stdout, result.stdout
    return result


def wget(port: int) -> str:
    return f"timeout 30 wget -q -O - --header 'X-Builder-API-Password: pw' http://host.docker.internal:{port}"


def post(port: int, job: str, body: str = "{}") -> str:
    """Shell: post `job`, leaving its id in $ID."""
    return (f"ID=$({wget(port)}/job/{job} --header 'Content-Type: application/json' --post-data '{body}' "
            "| sed 's/.*\"id\": \"\\([0-9a-f]*\\)\".*/\\1/'); "
            f"echo POSTED:{job}:$ID")


def test_files_the_agent_swaps_never_reach_host_files(user: User) -> None:
    project, port = user.project(), free_port()
    secret = user.write(user.home / ".ssh" / "id_ed25519", SECRET + "\n", mode=0o600)
    bashrc = user.write(user.home / ".bashrc", "# the user's bashrc\n")
    dangling, marker = user.home / "created-through-a-dangling-link", user.home / "PWNED-agent-id"
    user.write(project / "notes" / "app.log", "first line\n")
    # the worst case: the API's own logs inside the project (log_dir), where the agent can reach them
    body = (f'log_dir = "{project}/logs"\n[project.app.build]\ndedupe_window_s = 0\n'
            '[project.app.logs]\napp = "notes/app.log"\n'
            '[project.app.jobs.env]\ncommand = "env"\n[project.app.jobs.echo]\ncommand = "echo"\nargs = ["hi"]\n')
    with api(user, project, port, body):
        assert (project / "logs" / "app").is_dir()
        script = "; ".join([
            post(port, "env"), f"{wget(port)}\"/build_status?id=$ID&wait=20\"; echo",
            f"ln -sf {secret} notes/app.log", f"{wget(port)}'/logs?file=app'; echo LOGS:$?",
            f"ln -sf {bashrc} logs/app/build.log", f"ln -sf {dangling} logs/app/events.log",
            post(port, "echo", f'{{"agent_id": "x\\ntouch {marker} #"}}'),
            f"{wget(port)}\"/build_status?id=$ID&wait=20\"; echo",
            f"{wget(port)}'/events?n=50'; echo",
        ])
        result = agent(user, project, script)
        posted = {job: value for job, value in (item.split(":", 1) for item in field(result.stdout, "POSTED"))}
        env_job = call(port, f"/build_status?id={posted['env']}")
        echo_job = call(port, f"/build_status?id={posted['echo']}")
    assert env_job["status"] == "done" and "PATH=" in env_job["log_tail"]
    for name, value in HOST_SECRETS.items():  # the job ran without the user's credentials
        assert name not in env_job["log_tail"] and value not in result.stdout
    assert SECRET not in result.stdout and SECRET not in result.stderr
    assert field(result.stdout, "LOGS") == ["1"]  # 403: refused, not the key
    assert echo_job["status"] == "failed" and "build log refused" in echo_job["log_tail"]
    assert bashrc.read_text() == "# the user's bashrc\n" and secret.read_text() == SECRET + "\n"
    assert not dangling.exists() and not marker.exists()


def test_a_pinned_script_swapped_during_or_before_its_run_runs_no_payload(user: User) -> None:
    project, port = user.project(), free_port()
    user.write(project / "scripts" / "deploy.sh", ORIGINAL, mode=0o755)
    digest = hashlib.sha256(ORIGINAL.encode()).hexdigest()
    during, before = user.home / "PWNED-during-the-run", user.home / "PWNED-before-the-run"
    body = ('[project.app.build]\ndedupe_window_s = 0\n'
            '[project.app.jobs.deploy]\ncommand = "bash"\nargs = ["scripts/deploy.sh"]\n'
            f'command_hash = {{ path = "scripts/deploy.sh", sha256 = "sha256:{digest}" }}\n'
            '[project.app.jobs.blocker]\ncommand = "sleep"\nargs = ["3"]\n')
    original = "printf '#!/bin/bash\\nsleep 2\\necho ORIGINAL-END\\n' > scripts/deploy.sh"
    with api(user, project, port, body):
        script = "; ".join([
            # 1. rewritten in place while bash sleeps (bash reads on from its offset), then restored
            post(port, "deploy"), "sleep 1", f"printf '#!/bin/bash\\nsleep 2\\ntouch {during}\\n' > scripts/deploy.sh",
            "sleep 4", original,
            # 2. swapped after the request-time check, while it waits behind another job
            post(port, "blocker"), post(port, "deploy"), f"printf 'touch {before}\\n' > scripts/deploy.sh",
            "sleep 6", original, "echo DONE:1",
        ])
        result = agent(user, project, script)
        ids = [value.split(":", 1)[1] for value in field(result.stdout, "POSTED") if value.startswith("deploy:")]
        first, second = (call(port, f"/build_status?id={entry}&wait=20") for entry in ids)
    assert not during.exists() and not before.exists(), "a payload of the agent's swap ran on the host"
    assert first["status"] == "done" and "ORIGINAL-END" in first["log_tail"]
    assert second["status"] == "failed" and second["returncode"] == 126
    assert "command_hash_mismatch: scripts/deploy.sh is " in second["log_tail"]
    assert "nothing was run" in second["log_tail"]
    build_log = user.home / ".llm-docker" / "builder-api" / "app" / "logs" / "build.log"
    assert build_log.is_file() and not (project / "logs").exists()  # the API's log is the user's, outside
