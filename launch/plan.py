"""From a parsed request to the container specs of a launch, refusing bad input first.

This is the whole planning stage in order: load the config, guard the folders, gather
the host facts, build one spec per container. It raises `ConfigError` or `PathRefused`
before anything has been written or Docker contacted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from pathlib import Path

from launch.argv import LaunchRequest
from launch.command import session_from_request
from launch.config import Config, default_home, load_config
from launch.guards import check_docker_dir, check_host_folder
from launch.hostfacts import HostFacts, find_git_toplevel, gather_host_facts
from launch.identity import project_root
from launch.layout import Layout, default_layout
from launch.spec import ContainerSpec, container_spec


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    request: LaunchRequest
    config: Config
    facts: HostFacts
    specs: tuple[ContainerSpec, ...]
    warnings: tuple[str, ...]
    #: Where the windows of a supervised launch go; None for a single interactive launch.
    layout: Layout | None = None


def builder_api_endpoint(project: str, environ: Mapping[str, str]) -> tuple[int, str] | None:
    """(port, password) from the project's builder-api config; None when it has none (the
    supervisor then says why when it tries to start the API).

    `load` expands `${VAR}` from `environ` *and* `$LLM_DOCKER_HOME/llm-docker.conf` and `.env`
    (`builder_api.expansion`), exactly as `llm-docker api` does, so the password handed to
    the container is the one the server checks."""
    from builder_api.config import ConfigError, load

    try:
        api = load(project, None, environ)
    except (ConfigError, OSError):
        return None
    return api.port, api.password


def plan_launch(request: LaunchRequest, *, environ: Mapping[str, str], cwd: Path,
                user_home: Path) -> LaunchPlan:
    """Plan every container of a launch (one, or one per window/slot)."""
    state_home = default_home(environ, user_home)
    loaded = load_config(state_home, environ, user_home)
    config = loaded.config
    workspace = None
    if config.workspace_dir is not None:
        workspace = check_host_folder(config.workspace_dir, role="WORKSPACE_DIR",
                                      user_home=user_home, state_home=state_home)
    check_docker_dir(config.docker_dir)
    launch_dir = (cwd / (request.directory or ".")).resolve()
    toplevel = find_git_toplevel(launch_dir)
    root = project_root(launch_dir, workspace, toplevel)
    check_host_folder(root, role="project folder", user_home=user_home, state_home=state_home)
    facts = gather_host_facts(launch_dir, user_home=user_home, state_home=state_home,
                              workspace=workspace, toplevel=toplevel, environ=environ)
    wants_api = request.api if request.api is not None else config.builder_api_autostart
    if wants_api or request.api_background:
        endpoint = builder_api_endpoint(root.name, environ)
        facts = dataclasses.replace(facts, builder_api=endpoint)
        if endpoint is not None and endpoint[1]:
            # The server checks the TOML's password; a different BUILDER_API_PASSWORD in .env
            # must not be what the container gets.
            config = dataclasses.replace(config, builder_api_password=endpoint[1])
    if not request.supervised:
        specs = (container_spec(request, config, facts),)
    else:
        specs = tuple(
            # Each window is its own slot, with its own freshly minted session id.
            container_spec(request, config, facts, slot=slot,
                           session=session_from_request(request, str(uuid.uuid4())))
            for slot in request.window_slots()
        )
    layout = None
    if request.supervised:
        layout = request.layout or default_layout(platform=facts.platform, tmux_available=facts.tmux_available,
                                                  terminal=facts.stdin_tty)
    return LaunchPlan(request, config, facts, specs, loaded.warnings, layout)
