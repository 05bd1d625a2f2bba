"""The `cld` and `ocd` commands: parse, plan, then print (`--dry-run`) or run.

Exit codes: 0 success (or the tool's own code once running); 2 with a one-line message on
stderr for bad input (flags, config, paths), a busy slot, or an unusable state database;
125 Docker failures. The README's "Exit codes" lists them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from launch import __version__
from launch.argv import HelpRequest, LaunchRequest, VersionRequest, parse_argv
from launch.config import ConfigError
from launch.errors import UsageError
from launch.guards import PathRefused
from launch.help import help_text
from launch.plan import LaunchPlan, plan_launch
from launch.tools import Tool

EXIT_USAGE = 2


def run_launcher(tool: Tool, argv: Sequence[str], *, environ: Mapping[str, str] | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    environ = os.environ if environ is None else environ
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        parsed = parse_argv(tool, argv)
    except UsageError as error:
        print(f"{tool.launcher}: {error}", file=stderr)
        return EXIT_USAGE
    if isinstance(parsed, HelpRequest):
        stdout.write(help_text(tool))
        return 0
    if isinstance(parsed, VersionRequest):
        print(f"{tool.launcher} (llm-docker) {__version__}", file=stdout)
        return 0
    return run_request(parsed, environ=environ, stdout=stdout, stderr=stderr)


def run_request(request: LaunchRequest, *, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    """Plan `request` (bad input: one line, exit 2), then print it (`--dry-run`) or run it."""
    launcher = request.tool.launcher
    try:
        plan = plan_launch(request, environ=environ, cwd=Path.cwd(), user_home=Path.home())
    except (ConfigError, PathRefused, ValueError) as error:
        print(f"{launcher}: {error}", file=stderr)
        return EXIT_USAGE
    for warning in plan.warnings:
        print(f"{launcher}: warning: {warning}", file=stderr)
    if request.dry_run:
        _print_dry_run(plan, stdout, show_secrets=request.show_secrets)
        return 0
    from supervisor.launcher import run_plan  # imported late: -h and --dry-run stay light

    return run_plan(plan)


def _print_dry_run(plan: LaunchPlan, stdout: TextIO, *, show_secrets: bool) -> None:
    objects = [spec.as_json_object(show_secrets=show_secrets) for spec in plan.specs]
    json.dump(objects[0] if len(objects) == 1 else objects, stdout, indent=2)
    stdout.write("\n")


def _exit(code: int) -> None:
    """Exit with `code` even when the terminal is gone (Python would turn the failed
    flush of stdout at shutdown into exit code 120)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    sys.exit(code)


def cld_main() -> None:
    _exit(run_launcher(Tool.CLAUDE, sys.argv[1:]))


def ocd_main() -> None:
    _exit(run_launcher(Tool.OPENCODE, sys.argv[1:]))
