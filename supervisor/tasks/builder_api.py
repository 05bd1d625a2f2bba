"""The builder-api task: with `-a` (or BUILDER_API_AUTOSTART) the project's builder-api runs
in this supervisor's task group and stops with it — its build and runtime process groups
included. With `-ab` it is started as its own process (`llm-docker api`) that outlives the
launch. If the project's port is already taken (another launch serves it), it is reused,
never killed (upstream killed whatever listened there).
"""

from __future__ import annotations

import subprocess
import sys

import aiodocker

from builder_api.config import ConfigError, load
from builder_api.server import build_api, serve
from supervisor.context import Supervisor

NAME = "builder_api"


async def run(supervisor: Supervisor) -> None:
    request, config = supervisor.plan.request, supervisor.plan.config
    wanted = request.api if request.api is not None else config.builder_api_autostart
    if not (wanted or request.api_background):
        return
    project = supervisor.plan.specs[0].layout.root.name
    try:
        api_config = load(project, None)
    except ConfigError as error:
        supervisor.notice(f"builder-api: {error} — launching without it")
        return
    for warning in api_config.warnings:  # e.g. auth = "none": said on every start
        supervisor.notice(f"builder-api: {warning}")
    if request.api_background:
        _start_background(supervisor, project)
        return

    async def find_container(name: str) -> str | None:
        try:
            found = await supervisor.docker.containers.list(
                filters={"label": [f"llm-docker-project={name}"], "status": ["running"]})
        except aiodocker.DockerError:
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
        process = subprocess.Popen([sys.executable, "-m", "cli.admin", "api", "--project", project],
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                   start_new_session=True, cwd=supervisor.plan.facts.launch_dir)
    supervisor.notice(f"builder-api for {project} runs in the background (pid {process.pid}, log {log}); "
                      "stop it with kill")
