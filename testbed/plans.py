"""Launch plans and container specs from hand-made host facts: no Docker, no file system.

Shared by the tests of planning (`tests/launch`): the spec is only ever built from a plan
(`launch.plan.plan_from_facts`), exactly as the supervisor and `--dry-run` build it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from launch.argv import LaunchRequest, parse_argv
from launch.config import Config
from launch.hostfacts import HostFacts
from launch.plan import BuilderApi, LaunchPlan, plan_from_facts
from launch.session import SessionChoice
from launch.spec import ContainerSpec, container_spec
from launch.surface import SurfaceFacts
from launch.tools import Tool

#: The fresh session id the hand-made facts mint.
NEW_SESSION = "11111111-2222-4333-8444-555555555555"


def host_facts(**changes: Any) -> HostFacts:
    """Facts of a launch from /home/u/Projects/app by uid 1000, with a telling environment
    (a TMUX, a cloud secret, SSH_AUTH_SOCK: what must never reach the container)."""
    base = HostFacts(
        launch_dir=Path("/home/u/Projects/app"), workspace=None, user_home=Path("/home/u"),
        state_home=Path("/home/u/.llm-docker"), uid=1000, gid=1000,
        environ={"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-1000/default,1,0", "TMUX_PANE": "%1",
                 "AWS_SECRET_ACCESS_KEY": "leak", "SSH_AUTH_SOCK": "/tmp/agent", "PATH": "/usr/bin",
                 "ANTHROPIC_BASE_URL": "http://127.0.0.1:8080", "LANG": "en_US.UTF-8", "MY_TOOL_VAR": "v",
                 "HTTPS_PROXY": "http://proxy:3128"},
        stdin_tty=True, git_toplevel=None, surface=SurfaceFacts({}), dotfiles=(), boot_prompt=None,
        has_claude_md=False, launcher_pid=4242, launcher_start="777", launch_id="abcdef0123456789" * 2,
        new_session_id=NEW_SESSION,
    )
    return dataclasses.replace(base, **changes)


def plan_of(request: LaunchRequest, config: Config | None = None, facts: HostFacts | None = None, *,
            builder_api: BuilderApi | None = None) -> LaunchPlan:
    return plan_from_facts(request, config or Config(), facts or host_facts(), builder_api=builder_api)


def spec_of(request: LaunchRequest, config: Config | None = None, facts: HostFacts | None = None, *,
            session: SessionChoice | None = None, ssh_host_port: int | None = None,
            builder_api: BuilderApi | None = None) -> ContainerSpec:
    """The first slot's spec, as the supervisor builds it (with the slot store's `session`
    and a chosen `ssh_host_port` when given)."""
    plan = plan_of(request, config, facts, builder_api=builder_api)
    return container_spec(plan, plan.slots[0], session=session, ssh_host_port=ssh_host_port)


def create_body(tool: Tool, line: str, config: Config | None = None, **fact_changes: Any) -> dict[str, Any]:
    """The Engine API create body of `tool` launched with the arguments `line` from
    /home/u/Projects/app (the hand-made facts, changed by `fact_changes`)."""
    request = parse_argv(tool, line.split(), cwd=Path("/home/u/Projects/app"), is_dir=lambda p: False)
    assert isinstance(request, LaunchRequest), request
    body: dict[str, Any] = spec_of(request, config or Config(), host_facts(**fact_changes)).create
    return body
