"""The supervisor end to end against Podman's Docker-compatible API (`podman system service`).

The scenarios the suite runs against Docker (`test_supervisor_docker.py`): real `cld`
processes, the fake agent, each slot behind its network gateway (the default
`NETWORK_MODE=gateway`) — only `DOCKER_HOST` points at a private rootful Podman service
(`testbed.podman`) holding copies of the test images. What the tests look at is Podman's own
view (its command line on the service's storage), never the product's adapter.

The launcher runs as the unprivileged test user (a member of the socket's group, as with
Docker's socket): Podman ignores `ReadonlyPaths`, so a launch as root is refused there
(`supervisor.supervise.engine_refusal`) — that refusal is tested too.

Needs the Docker engine (the test images come from it) and Podman (`apt-get install podman
catatonit`); absent either, the tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.client import Engine
from testbed.agent_images import build_gateway_image
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_GATEWAY_IMAGE
from testbed.podman import PodmanService, podman_service
from testbed.processes import PtyProcess, field, guardians, project_containers, run, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


@pytest.fixture(scope="module")
def podman(docker_engine_ready: None) -> Iterator[PodmanService]:
    """One private Podman service for the module, with the busybox test image and the tests'
    current gateway image (built on Docker first if its inputs changed: a stale one would make
    the launcher rebuild it on Podman, which has no base image)."""
    with tempfile.TemporaryDirectory(prefix="llm-docker-test-gateway-") as home:
        built = build_gateway_image(Path(home))
    assert built.returncode == 0, built.stderr[-4000:]
    with podman_service(BUSYBOX_IMAGE, TEST_GATEWAY_IMAGE) as service:
        yield service


def start(user: User, podman: PodmanService, pty_processes: list[PtyProcess], *args: str) -> tuple[PtyProcess, str]:
    """`cld ARGS` as the user in a terminal, on Podman, until the agent is ready; its session."""
    process = user.pty("cld", *args, cwd=user.project(), DOCKER_HOST=podman.docker_host)
    pty_processes.append(process)
    process.expect("READY")
    return process, process.text.split("SESSION:")[1].split()[0]


def saved(user: User, slot: int) -> str | None:
    result = user.run("llm-docker", "slots", "--json", cwd=user.home)
    assert result.returncode == 0, result.stderr
    return next((row["session_id"] for row in json.loads(result.stdout) if row["slot"] == slot), None)


def agent_and_gateway(podman: PodmanService, project: Path) -> list[str]:
    """The names of the project's agent container and of its gateway, on Podman."""
    agents = podman.project_containers(project)
    assert len(agents) == 1, agents
    name = podman.podman("inspect", "--format", "{{.Name}}", agents[0]).stdout.strip().lstrip("/")
    return [name, f"{name}-gateway"]


def test_headless_slot_roundtrip_on_podman(podman: PodmanService, user: User) -> None:
    project = user.project()
    first = user.run("cld", "--slot", "1", "--", "-p", "hi", cwd=project, DOCKER_HOST=podman.docker_host)
    assert first.returncode == 0, first.stderr
    session = field(first.stdout, "ANSWER")[0]
    assert field(first.stdout, "ARG")[:3] == ["--dangerously-skip-permissions", "--session-id", session]
    assert "slot 1 saved" in first.stderr
    again = user.run("cld", "-c", "--slot", "1", "--", "-p", "again", "--fake-exit", "7", cwd=project,
                     DOCKER_HOST=podman.docker_host)
    assert again.returncode == 7, again.stderr
    assert field(again.stdout, "ARG")[1:3] == ["--resume", session]
    assert podman.names() == []  # agents and gateways removed
    assert project_containers(project) == []  # and nothing of it ever ran on Docker


def test_piped_stdin_and_separate_streams_on_podman(podman: PodmanService, user: User) -> None:
    result = user.run("cld", cwd=user.project(), stdin=b"line one\nline two\n", DOCKER_HOST=podman.docker_host)
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "ECHO") == ["line one", "line two"]
    assert "ECHO:" not in result.stderr


def test_sigkill_of_the_launcher_on_podman(podman: PodmanService, user: User,
                                           pty_processes: list[PtyProcess]) -> None:
    """Start a slot in a terminal, the agent answers, SIGKILL the launcher: the guardian removes
    the agent and its gateway and finishes the slot's save."""
    process, session = start(user, podman, pty_processes, "--slot", "6")
    process.type("hello\r")
    process.expect("ECHO:hello")
    assert sorted(podman.names()) == agent_and_gateway(podman, user.project())  # on Podman, behind its gateway
    status = user.run("llm-docker", "status", "--json", cwd=user.project(), DOCKER_HOST=podman.docker_host)
    assert status.returncode == 0, status.stderr
    assert [row["health"] for row in json.loads(status.stdout)] == ["running"]
    process.process.kill()
    process.wait()
    wait_until(lambda: podman.names() == [], timeout=30)
    assert saved(user, 6) == session


def test_container_killed_from_outside_on_podman(podman: PodmanService, user: User,
                                                pty_processes: list[PtyProcess]) -> None:
    """The watchdog sees Podman's `die` event: the engine's event filter and what it sends."""
    process, session = start(user, podman, pty_processes, "--slot", "8")
    podman.podman("kill", podman.project_containers(user.project())[0])
    assert process.wait(timeout=60) == 137
    process.expect("the container was killed from outside", timeout=5)
    assert podman.names() == []
    assert process.attributes_restored()
    assert saved(user, 8) == session


def test_the_die_event_passes_the_watchdogs_filter_on_podman(podman: PodmanService,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Podman matches a container's exit only as `died` but sends it as `die`: the engine
    adapter filters actions itself, so the watchdog's filter (`die`, `oom`, its launch label)
    gets Podman's `die` with the exit code. (Asked of the adapter directly: in a launch the
    attach stream's end may win the race and end the supervisor before the event comes.)"""
    label = f"io.llm-docker.test-events={uuid.uuid4().hex}"
    monkeypatch.setenv("DOCKER_HOST", podman.docker_host)

    async def first_event() -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        async with Engine() as docker, docker.events({"type": ["container"], "label": [label],
                                                      "event": ["die", "oom"]}) as events:
            async def read() -> None:
                async for event in events:
                    found.append(event)
                    return

            async with anyio.create_task_group() as group:
                group.start_soon(read)
                await anyio.sleep(1)  # the subscription stands before the container exists
                container = await anyio.to_thread.run_sync(lambda: podman.podman(
                    "run", "-d", "--rm", "--label", label, BUSYBOX_IMAGE, "sleep", "60").stdout.strip())
                try:
                    await anyio.to_thread.run_sync(lambda: podman.podman("kill", container))
                    with anyio.fail_after(30):
                        while not found:
                            await anyio.sleep(0.05)
                finally:
                    group.cancel_scope.cancel()
                    await anyio.to_thread.run_sync(lambda: podman.podman("rm", "-f", container, check=False))
        return found[0]

    event = anyio.run(first_event)
    assert event.get("Action") == "die"
    assert event.get("Actor", {}).get("Attributes", {}).get("exitCode") == "137"


def test_sigterm_to_the_launcher_on_podman(podman: PodmanService, user: User,
                                          pty_processes: list[PtyProcess]) -> None:
    process, session = start(user, podman, pty_processes, "--slot", "5")
    os.kill(process.process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert podman.names() == []
    assert process.attributes_restored()
    assert saved(user, 5) == session


def test_gc_after_launcher_and_guardian_were_killed_on_podman(podman: PodmanService, user: User,
                                                              pty_processes: list[PtyProcess]) -> None:
    """Nobody left to clean up: the gateway ends with its lease, but Podman keeps a container
    another one shares the network of — `llm-docker gc` removes the agent first, then the
    gateway, and finishes the save."""
    process, session = start(user, podman, pty_processes, "--slot", "7")
    ours = guardians(user.state_home)
    assert len(ours) == 1, ours
    os.kill(ours[0], signal.SIGKILL)
    process.process.kill()
    process.wait()
    assert len(podman.names()) == 2
    result = user.run("llm-docker", "gc", cwd=user.project(), DOCKER_HOST=podman.docker_host)
    assert result.returncode == 0, result.stderr
    assert "removed 2 container(s) of dead launchers" in result.stdout, result.stdout
    assert podman.names() == []
    assert saved(user, 7) == session


def test_what_podman_cannot_hold_is_refused_before_any_agent(podman: PodmanService, user: User, project: Path,
                                                            home: Path) -> None:
    """Podman ignores ReadonlyPaths: a launch whose agent would run as root, or without the
    sandbox, is one line and no agent container."""
    as_root = run("cld", "--", "-p", "x", cwd=project, home=home, DOCKER_HOST=podman.docker_host)
    assert as_root.returncode == 125
    assert as_root.stderr.splitlines() == [
        "cld: Podman ignores ReadonlyPaths, which keep the image's guard-rails (/etc/claude-code, /opt/llm-docker) "
        "read-only for an agent running as root — launch as a non-root user (the agent runs as your uid), or use "
        "Docker"]
    assert field(as_root.stdout, "SESSION") == []
    no_sandbox = user.run("cld", "--", "-p", "x", cwd=user.project(), DOCKER_HOST=podman.docker_host,
                          SANDBOX_ENABLED="false")
    assert no_sandbox.returncode == 2
    assert no_sandbox.stderr.count("\n") == 1 and "with SANDBOX_ENABLED=false — set SANDBOX_ENABLED=true" in \
        no_sandbox.stderr, no_sandbox.stderr
    wait_until(lambda: podman.names() == [], timeout=30)  # the early gateways are gone too
