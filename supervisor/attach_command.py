"""The effects behind `llm-docker attach`: find the slot's container, then attach.

The project is identified as a launch identifies it (`launch.project.locate_project`),
without planning a launch; a refused folder or config is one line and its exit code (2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.client import Engine, run_with_engine
from launch.errors import EXIT_FAILURE, EXIT_USAGE, LlmDockerError
from launch.project import locate_project
from launch.tools import Tool
from supervisor.attach import attach, find_slot_container


def attach_slot(tool: Tool, slot: int, directory: Path | None, *, launch_id: str | None = None) -> int:
    if not sys.stdin.isatty():
        print("llm-docker attach: needs a terminal (stdin is not a TTY)", file=sys.stderr)
        return EXIT_USAGE
    try:
        layout = locate_project(directory, environ=os.environ, cwd=Path.cwd(), user_home=Path.home()).identity
    except LlmDockerError as error:
        print(f"llm-docker attach: {error}", file=sys.stderr)
        return error.exit_code

    async def body(docker: Engine) -> int:
        found = await find_slot_container(docker, tool=tool.value, project_token=layout.token, slot=slot,
                                          launch_id=launch_id)
        if not found:
            print(f"llm-docker attach: no running {tool.value} slot {slot} in {layout.root} — "
                  "`llm-docker status` lists the running slots", file=sys.stderr)
            return EXIT_FAILURE
        if len(found) > 1:
            print(f"llm-docker attach: {len(found)} launches run {tool.value} slot {slot} here; "
                  "attaching to the newest", file=sys.stderr)
        return await attach(docker, found[0], title=f"{tool.value} slot {slot} ({layout.root})")

    return run_with_engine(body, prefix="llm-docker attach")
