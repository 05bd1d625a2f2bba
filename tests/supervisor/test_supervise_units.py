"""The supervisor's launch path without Docker: each slot's spec is built once, after its
session is resolved; `attach` and `ssh` identify the project without planning a launch;
every refusal is an `LlmDockerError` with its documented exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import launch.plan
import supervisor.attach_command
import supervisor.ssh_command
import supervisor.supervise
from launch.argv import LaunchRequest
from launch.errors import EXIT_FAILURE, EXIT_USAGE, LlmDockerError
from launch.plan import LaunchPlan, SlotPlan, plan_launch
from launch.session import SessionChoice
from launch.spec import ContainerSpec
from launch.ssh import SshPortError
from launch.tools import Tool
from supervisor.gateway import GatewayError, GatewayHolders
from supervisor.store import StateError, StateStore
from supervisor.tripwire import QuarantineError


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite's thread talks to the loop through asyncio."""
    return "asyncio"


@pytest.mark.anyio
async def test_each_slot_spec_is_built_once_with_its_resolved_session(
        in_project: Path, user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_launch(LaunchRequest(Tool.CLAUDE, windows=3), environ={"LLM_DOCKER_SSH_ENABLED": "false"},
                       cwd=in_project, user_home=user_home)
    built: list[tuple[int | None, SessionChoice | None]] = []
    real = supervisor.supervise.container_spec

    def counting(plan: LaunchPlan, slot: SlotPlan, **kwargs: Any) -> ContainerSpec:
        built.append((slot.slot, kwargs.get("session")))
        return real(plan, slot, **kwargs)

    monkeypatch.setattr(supervisor.supervise, "container_spec", counting)
    notices: list[str] = []
    async with StateStore.open(plan.facts.state_home) as store:
        slots = await supervisor.supervise._lease_slots(  # the step under test
            plan, store, None, notices.append, GatewayHolders(None, None))
    assert slots is not None and len(slots) == 3
    assert [slot for slot, _ in built] == [1, 2, 3]  # once per slot
    # the session passed in is the resolved one: fresh here, so the plan's own id
    assert [session for _, session in built] == [planned.session for planned in plan.slots]
    assert [s.spec.session for s in slots] == [planned.session for planned in plan.slots]


def test_attach_identifies_the_project_without_planning_a_launch(
        in_project: Path, user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_planning(*args: object, **kwargs: object) -> None:
        raise AssertionError("attach planned a launch")

    seen: list[object] = []
    monkeypatch.setattr(launch.plan, "plan_launch", no_planning)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(supervisor.attach_command, "run_with_engine",
                        lambda body, prefix: seen.append(body) or 0)
    assert supervisor.attach_command.attach_slot(Tool.CLAUDE, 2, None) == 0
    assert len(seen) == 1


def test_attach_refuses_a_dangerous_folder_in_one_line(user_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert supervisor.attach_command.attach_slot(Tool.CLAUDE, 1, user_home) == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("llm-docker attach: ") and error.count("\n") == 1


def test_ssh_words_and_folders_are_refused_in_one_line(user_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert supervisor.ssh_command.ssh_into(["claude", "100"], user_home / ".llm-docker") == EXIT_USAGE
    assert capsys.readouterr().err == "llm-docker ssh: the slot must be between 1 and 99, got 100\n"
    monkeypatch.setattr(supervisor.ssh_command.shutil, "which", lambda name: "/usr/bin/ssh")
    monkeypatch.chdir(user_home)
    assert supervisor.ssh_command.ssh_into([], user_home / ".llm-docker") == EXIT_USAGE
    error = capsys.readouterr().err
    assert "is your home directory" in error and error.count("\n") == 1


@pytest.mark.parametrize(("error", "code"), [
    (StateError, EXIT_USAGE),
    (QuarantineError, EXIT_USAGE),
    (GatewayError, EXIT_FAILURE),
    (SshPortError, EXIT_FAILURE),
])
def test_supervisor_errors_are_llm_docker_errors(error: type[LlmDockerError], code: int) -> None:
    assert issubclass(error, LlmDockerError)
    assert error("one line").exit_code == code


def test_an_error_escaping_the_supervisor_is_still_one_line() -> None:
    from supervisor.launcher import _only_error

    busy = StateError("state database x is read-only")
    assert _only_error(busy) is busy
    assert _only_error(BaseExceptionGroup("tasks", [busy, GatewayError("no")])) is busy
    assert _only_error(BaseExceptionGroup("tasks", [busy, RuntimeError("a bug")])) is None  # keep its traceback
