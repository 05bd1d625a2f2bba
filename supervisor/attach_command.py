"""The effects behind `llm-docker attach`: find the slot's container, then attach."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aiodocker

from engine.client import run_with_engine
from launch.argv import LaunchRequest
from launch.config import ConfigError
from launch.guards import PathRefused
from launch.plan import plan_launch
from launch.tools import Tool
from supervisor.attach import EXIT_NOT_FOUND, EXIT_USAGE, attach, find_slot_container


def attach_slot(tool: Tool, slot: int, directory: Path | None, *, launch_id: str | None = None) -> int:
    if not sys.stdin.isatty():
        print("llm-docker attach: needs a terminal (stdin is not a TTY)", file=sys.stderr)
        return EXIT_USAGE
    try:
        plan = plan_launch(LaunchRequest(tool, directory=directory), environ=os.environ, cwd=Path.cwd(),
                           user_home=Path.home())
    except (ConfigError, PathRefused, ValueError) as error:
        print(f"llm-docker attach: {error}", file=sys.stderr)
        return EXIT_USAGE
    layout = plan.specs[0].layout

    async def body(docker: aiodocker.Docker) -> int:
        found = await find_slot_container(docker, tool=tool.value, project_token=layout.token, slot=slot,
                                          launch_id=launch_id)
        if not found:
            print(f"llm-docker attach: no running {tool.value} slot {slot} in {layout.root} — "
                  "`llm-docker status` lists the running slots", file=sys.stderr)
            return EXIT_NOT_FOUND
        if len(found) > 1:
            print(f"llm-docker attach: {len(found)} launches run {tool.value} slot {slot} here; "
                  "attaching to the newest", file=sys.stderr)
        return await attach(docker, found[0], title=f"{tool.value} slot {slot} ({layout.root})")

    return run_with_engine(body, prefix="llm-docker attach")
