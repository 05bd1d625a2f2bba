"""The `cld` and `ocd` commands: parse, plan, then print (`--dry-run`) or run.

Exit codes: 0 success, else the tool's own code once running; every refusal before that is
one line on stderr and the `exit_code` of its `LlmDockerError` — the codes and what they
mean are defined once, in `launch/errors.py` (the README's "Exit codes" lists them).

This is where the builder-api's config is loaded, once per launch (planning, below this
layer, gets it injected): the port and password the container gets and the config the
supervisor's builder-api task serves are the same one.
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
from launch.errors import LlmDockerError
from launch.help import help_text
from launch.plan import (
    BuilderApi,
    BuilderApiEndpoint,
    BuilderApiResolver,
    BuilderApiUnavailable,
    LaunchPlan,
    plan_launch,
    slot_specs,
)
from launch.tools import Tool


def run_launcher(tool: Tool, argv: Sequence[str], *, environ: Mapping[str, str] | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    environ = os.environ if environ is None else environ
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        parsed = parse_argv(tool, argv)
    except LlmDockerError as error:
        print(f"{tool.launcher}: {error}", file=stderr)
        return error.exit_code
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
        _refuse_unavailable_tmux(request)
        plan = plan_launch(request, environ=environ, cwd=Path.cwd(), user_home=Path.home(),
                           builder_api=builder_api_loader(environ))
        for warning in plan.warnings:
            print(f"{launcher}: warning: {warning}", file=stderr)
        if request.dry_run:
            _print_dry_run(plan, stdout, show_secrets=request.show_secrets)
            return 0
        plan = _settle_tmux(plan, environ=environ, stderr=stderr)
    except LlmDockerError as error:
        print(f"{launcher}: {error}", file=stderr)
        return error.exit_code
    from supervisor.launcher import run_plan  # imported late: -h and --dry-run stay light

    return run_plan(plan)


def _refuse_unavailable_tmux(request: LaunchRequest) -> None:
    """A tmux mode whose tool this build cannot install: one line, before anything happens."""
    from launch.argv import TmuxMode

    if request.tmux is not TmuxMode.NONE:
        from cli.tmux_offer import refuse_unavailable

        refuse_unavailable(request)


def _settle_tmux(plan: LaunchPlan, *, environ: Mapping[str, str], stderr: TextIO) -> LaunchPlan:
    """`-t` inside a host tmux, and the first-use offer of an `INSTALL_TMUX_*` that is off
    (`cli/tmux_offer.py`); the plan unchanged for launches without a tmux mode."""
    from launch.argv import TmuxMode

    if plan.request.tmux is TmuxMode.NONE:
        return plan
    from cli.tmux_offer import settle_tmux

    def replan(request: LaunchRequest) -> LaunchPlan:
        return plan_launch(request, environ=environ, cwd=Path.cwd(), user_home=Path.home(),
                           builder_api=builder_api_loader(environ))

    return settle_tmux(plan, replan=replan, stdin=sys.stdin, stderr=stderr)


def builder_api_loader(environ: Mapping[str, str]) -> BuilderApiResolver:
    """Load a project's builder-api config with the launch's environment — `load` expands
    `${VAR}` from it *and* `$LLM_DOCKER_HOME/llm-docker.conf` and `.env`
    (`builder_api.expansion`), exactly as `llm-docker api` does, so the password handed to
    the container is the one the server checks. Called at most once per launch, by planning."""
    def load(project: str) -> BuilderApi:
        from builder_api.config import ConfigError, load  # imported late: only launches with -a/-ab pay for it

        try:
            api = load(project, None, environ)
        except (ConfigError, OSError) as error:
            return BuilderApiUnavailable(str(error))
        return BuilderApiEndpoint(api.port, api.password, config=api, warnings=tuple(api.warnings))

    return load


def _print_dry_run(plan: LaunchPlan, stdout: TextIO, *, show_secrets: bool) -> None:
    """The specs each slot would get with its fresh session (the supervisor may resolve
    another session per slot, and move SSH to a free port)."""
    objects = [spec.as_json_object(show_secrets=show_secrets) for spec in slot_specs(plan)]
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
