"""Which project a folder is, found the way a launch finds it — without planning a launch.

`llm-docker attach` and `llm-docker ssh` only need the project's identity (its root and
token, what the containers are labelled with); planning a whole launch for that would gather
every host fact, load the builder-api config and build container specs they throw away.
`locate_project` is the first step of `launch.plan.plan_launch` too, so both always agree on
which project a folder is, and refuse the same folders (`ConfigError`/`PathRefused`, exit 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from launch.config import LoadedConfig, default_home, load_config
from launch.guards import check_host_folder
from launch.hostfacts import find_git_toplevel
from launch.identity import ProjectIdentity, project_identity


@dataclasses.dataclass(frozen=True)
class ProjectLocation:
    """A launch folder and the project it belongs to, its folders already guarded."""

    state_home: Path
    loaded: LoadedConfig
    #: WORKSPACE_DIR, resolved and guarded (None when unset).
    workspace: Path | None
    #: The folder the launch is about (resolved).
    launch_dir: Path
    git_toplevel: Path | None
    identity: ProjectIdentity


def locate_project(directory: Path | None, *, environ: Mapping[str, str], cwd: Path,
                   user_home: Path) -> ProjectLocation:
    """Load the config, guard WORKSPACE_DIR, find the project root of `directory` (relative
    to `cwd`; default: `cwd`) and guard it. Reads files only; raises `ConfigError` (or its
    `PathRefused`) before anything is written."""
    state_home = default_home(environ, user_home)
    loaded = load_config(state_home, environ, user_home)
    workspace = None
    if loaded.config.workspace_dir is not None:
        workspace = check_host_folder(loaded.config.workspace_dir, role="WORKSPACE_DIR",
                                      user_home=user_home, state_home=state_home)
    launch_dir = (cwd / (directory or ".")).resolve()
    toplevel = find_git_toplevel(launch_dir)
    identity = project_identity(launch_dir, workspace, toplevel)
    check_host_folder(identity.root, role="project folder", user_home=user_home, state_home=state_home)
    return ProjectLocation(state_home, loaded, workspace, launch_dir, toplevel, identity)
