"""Execute a launch plan (the supervisor proper arrives with issue #3)."""

from __future__ import annotations

import sys

from launch.plan import LaunchPlan


def run_plan(plan: LaunchPlan) -> int:
    launcher = plan.request.tool.launcher
    print(f"{launcher}: running containers is not available in this build yet — "
          f"use {launcher} --dry-run to see the container spec", file=sys.stderr)
    return 1
