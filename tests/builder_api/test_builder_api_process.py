"""builder-api as a process: `llm-docker api` standalone, and `cld -a` inside a launch's
supervisor. SIGTERM (or the launch ending) leaves no build or runtime process alive."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from testbed.builder_api import call, serving, wait_for, write_api_config
from testbed.processes import command, free_port, launcher_env, run, running


def test_standalone_api_sigterm_leaves_no_process(project: Path, user_home: Path) -> None:
    port = free_port()
    config = user_home / "api" / "builder-api.toml"
    write_api_config(config, project, port)
    process = subprocess.Popen(command("llm-docker", "api", "--project", "app", "--config", str(config)),
                               cwd=project, env=launcher_env(user_home), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: serving(port))
        assert call(port, "GET", "/")["name"] == "app"
        assert call(port, "POST", "/job/spawn")["status"] in ("queued", "building")
        assert call(port, "POST", "/run")["ok"] is True
        wait_for(lambda: (project / "build-child.pid").exists() and (project / "runtime-child.pid").exists()
                 and (project / "build-child.pid").read_text().strip() != ""
                 and (project / "runtime-child.pid").read_text().strip() != "")
        children = [int((project / name).read_text()) for name in ("build-child.pid", "runtime-child.pid")]
        assert all(running(pid) for pid in children)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not any(running(pid) for pid in children), "a build or runtime process outlived builder-api"
        assert not serving(port)
    finally:
        if process.poll() is None:
            process.kill()


def test_standalone_api_bad_config_and_taken_port(project: Path, user_home: Path) -> None:
    broken = user_home / "api" / "builder-api.toml"
    broken.parent.mkdir(parents=True)
    broken.write_text("[project.app]\nport = 1\n")
    result = run("llm-docker", "api", "--project", "app", "--config", str(broken), cwd=project, home=user_home)
    assert result.returncode == 2 and "CONFIG ERROR" in result.stderr and result.stderr.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        write_api_config(broken, project, taken.getsockname()[1])
        result = run("llm-docker", "api", "--project", "app", "--config", str(broken), cwd=project, home=user_home)
    assert result.returncode == 1 and "bind failed" in result.stderr


def start_cld_a(project: Path, home: Path, port: int, *agent_args: str) -> subprocess.Popen[str]:
    """`cld -a` with the fake agent (the `home` fixture) and a builder-api config for `project`."""
    write_api_config(home / ".llm-docker" / "api_config" / "builder-api.toml", project, port)
    return subprocess.Popen(command("cld", "-a", "--", *agent_args), cwd=project, env=launcher_env(home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.docker
def test_cld_a_serves_the_api_for_the_launch_only(project: Path, home: Path, docker_engine_ready: None) -> None:
    port = free_port()
    launch = start_cld_a(project, home, port, "-p", "hi", "--fake-sleep", "4")
    try:
        wait_for(lambda: serving(port))
        assert call(port, "GET", "/")["name"] == "app"
        call(port, "POST", "/run")
        wait_for(lambda: (project / "runtime-child.pid").exists()
                 and (project / "runtime-child.pid").read_text().strip() != "")
        child = int((project / "runtime-child.pid").read_text())
        second = run("cld", "-a", "--", "-p", "again", cwd=project, home=home)  # reuses, never kills
        assert second.returncode == 0 and "reusing it" in second.stderr
        assert serving(port)
        assert launch.wait(timeout=60) == 0
        assert not serving(port) and not running(child)
    finally:
        if launch.poll() is None:
            launch.kill()


CLIENT = Path(__file__).parents[2] / "image/files/rootfs/usr/local/bin/builder-api"


def test_the_agents_client_command(project: Path, user_home: Path) -> None:
    port = free_port()
    config = user_home / "api" / "builder-api.toml"
    write_api_config(config, project, port)
    with config.open("a") as handle:
        handle.write('[project.app.jobs.greet]\ncommand = "echo"\nargs = ["hello", "{who}"]\n'
                     'placeholders.who = { regex = "[a-z]+" }\n[project.app.jobs.fail]\ncommand = "false"\n'
                     '[project.app.events]\npath = "events.jsonl"\n')
    server = subprocess.Popen(command("llm-docker", "api", "--project", "app", "--config", str(config)),
                              cwd=project, env=launcher_env(user_home), stderr=subprocess.DEVNULL)
    env = {"PATH": "/usr/bin:/bin", "BUILDER_API_HOST": "127.0.0.1", "BUILDER_API_PORT": str(port),
           "BUILDER_API_PASSWORD": "pw", "BUILDER_AGENT_ID": "client-test"}

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["python3", str(CLIENT), *args], env=env, capture_output=True, text=True, timeout=60)

    try:
        wait_for(lambda: serving(port))
        assert "greet(who=/[a-z]+/)" in client("jobs").stdout
        ran = client("run", "greet", "who=world")
        assert ran.returncode == 0 and ran.stdout.rstrip().endswith("hello world"), ran
        assert "greet: done (rc=0" in ran.stderr
        assert client("run", "fail").returncode == 1
        refused = client("run", "greet", "who=WORLD")
        assert refused.returncode == 2 and "regex_mismatch" in refused.stderr
        events = client("events", "--type", "job_finished")
        assert [json.loads(line)["job"] for line in events.stdout.splitlines()] == ["greet", "fail"]
        assert json.loads(client("status").stdout)["name"] == "app"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.docker
def test_sigterm_of_a_cld_a_launch_leaves_no_build_or_runtime(project: Path, home: Path,
                                                              docker_engine_ready: None) -> None:
    port = free_port()
    launch = start_cld_a(project, home, port, "-p", "hi", "--fake-sleep", "60")
    try:
        wait_for(lambda: serving(port))
        call(port, "POST", "/run")
        call(port, "POST", "/job/spawn")
        wait_for(lambda: all((project / name).exists() and (project / name).read_text().strip()
                             for name in ("build-child.pid", "runtime-child.pid")))
        children = [int((project / name).read_text()) for name in ("build-child.pid", "runtime-child.pid")]
        launch.send_signal(signal.SIGTERM)
        assert launch.wait(timeout=60) == 143
        assert not any(running(pid) for pid in children), "a build or runtime process outlived the launch"
        assert not serving(port)
    finally:
        if launch.poll() is None:
            launch.kill()


def test_a_launch_with_a_gives_the_container_the_projects_api_port(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    write_api_config(state / "api_config" / "builder-api.toml", project, 6789)
    with_api = json.loads(run("cld", "-a", "--dry-run", "--show-secrets", cwd=project, home=user_home).stdout)
    assert "BUILDER_API_PORT=6789" in with_api["create"]["Env"]
    # the password is a secret: in the 0600 secrets file, never in the Env (docker inspect)
    assert with_api["secrets"]["BUILDER_API_PASSWORD"] == "pw"
    assert not any(e.startswith("BUILDER_API_PASSWORD=") for e in with_api["create"]["Env"])
    without = json.loads(run("cld", "--dry-run", cwd=project, home=user_home).stdout)
    assert "BUILDER_API_PORT=6666" in without["create"]["Env"]
    assert "BUILDER_API_PASSWORD" not in without.get("secrets", {})
