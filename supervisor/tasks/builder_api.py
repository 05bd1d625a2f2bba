"""The builder-api task: with `-a` (or BUILDER_API_AUTOSTART) the project's builder-api runs
in this supervisor's task group and stops with it — its build and runtime process groups
included. With `-ab` it is started as its own process (`llm-docker api`) that outlives the
launch. If the project's port is already taken (another launch serves it), it is reused,
never killed (upstream killed whatever listened there).
"""

from __future__ import annotations

import subprocess

from builder_api.config import ProjectConfig
from builder_api.server import build_api, serve
from engine.errors import EngineError
from launch.plan import BuilderApiUnavailable
from launch.python_command import own_module
from supervisor.context import Supervisor

NAME = "builder_api"


async def run(supervisor: Supervisor) -> None:
    request, planned = supervisor.plan.request, supervisor.plan.builder_api
    if planned is None:  # the launch does not use it
        return
    project = supervisor.plan.project.root.name
    # loaded once, when the launch was planned (`cli.launchers.builder_api_loader`): the port
    # and password the agents were given are this config's
    if isinstance(planned, BuilderApiUnavailable):
        supervisor.notice(f"builder-api: {planned.reason} — launching without it")
        return
    api_config = planned.config
    assert isinstance(api_config, ProjectConfig)
    for warning in api_config.warnings:  # e.g. auth = "none": said on every start
        supervisor.notice(f"builder-api: {warning}")
    if request.api_background:
        _start_background(supervisor, project)
        return

    async def find_container(name: str) -> str | None:
        try:
            found = await supervisor.docker.containers.list(
                filters={"label": [f"llm-docker-project={name}"], "status": ["running"]})
        except EngineError:
            return None
        return found[0].id if found else None

    api = build_api(api_config, find_container=find_container)
    try:
        await serve(api)
    except OSError as error:
        supervisor.notice(f"builder-api: {error} — another launch probably serves {project}; reusing it")


def _start_background(supervisor: Supervisor, project: str) -> None:
    log = supervisor.state_home / "logs" / f"builder-api-{project}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(own_module("cli.admin", "api", "--project", project),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                   start_new_session=True, cwd=supervisor.plan.facts.launch_dir)
    supervisor.notice(f"builder-api for {project} runs in the background (pid {process.pid}, log {log}); "
                      "stop it with kill")
