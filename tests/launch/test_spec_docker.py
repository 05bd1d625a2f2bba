"""The spec'd container on the real engine, inspected from inside (busybox test image)."""

from __future__ import annotations

from pathlib import Path

import aiodocker
import pytest

from launch.argv import LaunchRequest, parse_argv
from launch.plan import plan_launch, slot_specs
from launch.state import prepare_for_container
from launch.tools import Tool
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import clean_environ

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

PROBE = r"""
echo "CAPS:$(grep CapEff /proc/self/status | cut -f2)"
echo "NNP:$(grep NoNewPrivs /proc/self/status | cut -f2)"
echo "PID1:$(cat /proc/1/comm)"
echo "SOCKETS:$(find / -path /proc -prune -o -path /sys -prune -o -name 'docker.sock' -print 2>/dev/null | wc -l)"
awk '{print "MOUNT:" $5 " " $6}' /proc/self/mountinfo
for p in .git/hooks/pre-commit .git/config .claude/settings.json .github/workflows/ci.yml .vscode/tasks.json \
         notes.txt src/new.txt; do
  if (echo x >> "$p") 2>/dev/null; then echo "WRITE:$p:ok"; else echo "WRITE:$p:denied"; fi
done
"""

PROTECTED = [".git/hooks/pre-commit", ".git/config", ".claude/settings.json", ".github/workflows/ci.yml",
             ".vscode/tasks.json"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_project(project: Path) -> None:
    for folder in (".git/hooks", ".claude", ".github/workflows", ".vscode", "src"):
        (project / folder).mkdir(parents=True)
    for file in (".git/config", ".claude/settings.json", ".github/workflows/ci.yml", ".vscode/tasks.json"):
        (project / file).write_text("original\n")
    (project / ".llm-docker-probe.sh").write_text(PROBE)


async def run_to_completion(docker: aiodocker.Docker, name: str, body: dict) -> tuple[int, list[str]]:
    container = await docker.containers.create(config=body, name=name)
    try:
        await container.start()
        result = await container.wait(timeout=60)
        lines = await container.log(stdout=True, stderr=True)
        return result["StatusCode"], "".join(lines).splitlines()
    finally:
        await container.delete(force=True)


async def test_spec_hardening_from_inside(docker: aiodocker.Docker, project: Path, user_home: Path) -> None:
    make_project(project)
    state = user_home / ".llm-docker"
    state.mkdir()
    # the create body alone, without the launch's gateway: host networking (the network walls
    # are tests/test_network_docker.py's)
    (state / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n"
                                           "NETWORK_MODE=host\n")
    request = parse_argv(Tool.CLAUDE, ["--slot", "2", "--", "--permission-mode", "plan"], cwd=project)
    assert isinstance(request, LaunchRequest)
    plan = plan_launch(request, environ=clean_environ(TMUX="/tmp/x,1,0"), cwd=project, user_home=user_home)
    spec = slot_specs(plan)[0]
    prepare_for_container(Tool.CLAUDE, state, spec.project_home, spec.name, ssh=False)

    status, lines = await run_to_completion(docker, spec.name, spec.create)
    assert status == 0, lines
    values = {}
    for line in lines:
        key, _, value = line.partition(":")
        values.setdefault(key, []).append(value)

    # the tool ran with its argv, as PID >1 under Docker's init
    assert values["ARG"] == spec.create["Cmd"][1:]
    assert values["ARG"][-2:] == ["--permission-mode", "plan"]
    assert values["PID1"] == ["docker-init"]
    assert values["CAPS"] == ["0000000000000000"]
    assert values["NNP"] == ["1"]
    assert values["SOCKETS"] == ["0"]

    mounts = dict(entry.split(" ", 1) for entry in values["MOUNT"])
    docker_dir = "/root/Projects"
    under_project = {target for target in mounts if target == docker_dir or target.startswith(docker_dir + "/")}
    planned = {m.target for m in spec.mounts if m.target.startswith(docker_dir + "/")}
    assert "/run/llm-docker" in mounts and "/root/.claude" in mounts
    assert under_project == planned
    assert planned >= {"/root/Projects/app", "/root/Projects/app/.git", "/root/Projects/app/.claude",
                       "/root/Projects/app/.github", "/root/Projects/app/.vscode"}
    for target in planned - {"/root/Projects/app"}:
        assert mounts[target].split(",")[0] == "ro", target

    writes = dict(entry.rsplit(":", 1) for entry in values["WRITE"])
    for path in PROTECTED:
        assert writes[path] == "denied", path
    assert writes["notes.txt"] == "ok" and writes["src/new.txt"] == "ok"
    assert (project / ".git/config").read_text() == "original\n"
    assert not (project / ".git/hooks/pre-commit").exists()
    assert (project / "src/new.txt").read_text() == "x\n"
    # files the agent created belong to the invoking user
    assert (project / "src/new.txt").stat().st_uid == plan.facts.uid


async def test_opencode_spec_runs(docker: aiodocker.Docker, project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    # the create body alone, without the launch's gateway: host networking (the network walls
    # are tests/test_network_docker.py's)
    (state / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n"
                                           "NETWORK_MODE=host\n")
    request = parse_argv(Tool.OPENCODE, ["--", "run", "--model", "x"], cwd=project)
    assert isinstance(request, LaunchRequest)
    spec = slot_specs(plan_launch(request, environ=clean_environ(), cwd=project, user_home=user_home))[0]
    prepare_for_container(Tool.OPENCODE, state, spec.project_home, spec.name, ssh=False)
    status, lines = await run_to_completion(docker, spec.name, spec.create)
    assert status == 0
    assert [line for line in lines if line.startswith("ARG:")] == ["ARG:run", "ARG:--model", "ARG:x"]
    assert (spec.project_home / "opencode/.local/share/opencode").stat().st_mode & 0o777 == 0o700
