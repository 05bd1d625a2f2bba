"""The tmux modes' questions and their effects, for `cld`/`ocd` (decisions: `launch/tmux_tools.py`).

* A mode this build cannot give (`-tr`, `-tc`, `-tcl`): one line, exit 2 — called before
  planning, so no prompt, build, file or engine is touched (`refuse_unavailable`).
* `-t` inside a host tmux: on a terminal a two-choice menu (bare in this pane / nest), else
  bare with a notice.
* A mode whose `INSTALL_TMUX_*` is off: on a terminal "enable it and rebuild the image?";
  yes writes `KEY=true` into `llm-docker.conf` (the user's other lines kept: `launch.init_plan`,
  the wizard's own editor) and the launch goes on with `--build`, the rebuild `cld --build`
  does; no, EOF or no terminal: one line with the fix, exit 1, nothing written.
"""

from __future__ import annotations

import dataclasses
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from launch.argv import LaunchRequest
from launch.config import CONF_FILE
from launch.errors import EXIT_INTERRUPTED, ImageError, LlmDockerError, StateError, UsageError
from launch.plan import LaunchPlan, plan_from_facts
from launch.tmux_tools import (
    BARE_NOTICE,
    NEST_QUESTION,
    Nesting,
    accepts,
    bare,
    nest_answer,
    nesting,
    setting_offer,
    unavailable_reason,
)

#: Re-plans a request from scratch (config read again): after a setting was written.
Replan = Callable[[LaunchRequest], LaunchPlan]


def refuse_unavailable(request: LaunchRequest) -> None:
    """Raise the one-line `UsageError` for a tmux mode whose tool this build cannot install."""
    reason = unavailable_reason(request)
    if reason is not None:
        raise UsageError(reason)


def settle_tmux(plan: LaunchPlan, *, replan: Replan, stdin: TextIO, stderr: TextIO) -> LaunchPlan:
    """The plan to run once the tmux questions are answered (the same plan when none applies)."""
    plan = _settle_nesting(plan, stdin=stdin, stderr=stderr)
    return _settle_setting(plan, replan=replan, stdin=stdin, stderr=stderr)


def _settle_nesting(plan: LaunchPlan, *, stdin: TextIO, stderr: TextIO) -> LaunchPlan:
    launcher, name = plan.request.tool.launcher, plan.request.tool.value
    decision = nesting(plan.request, plan.facts.environ, interactive=plan.facts.stdin_tty)
    if decision is Nesting.NONE:
        return plan
    if decision is Nesting.ASK:
        while True:
            answer = _ask(f"{launcher}: {NEST_QUESTION.format(name=name)}", stdin, stderr)
            if answer is None:  # EOF: as without a terminal
                break
            nest = nest_answer(answer)
            if nest is True:
                return plan
            if nest is False:
                return _replanned(plan, bare(plan.request))
    print(f"{launcher}: {BARE_NOTICE.format(name=name)}", file=stderr)
    return _replanned(plan, bare(plan.request))


def _settle_setting(plan: LaunchPlan, *, replan: Replan, stdin: TextIO, stderr: TextIO) -> LaunchPlan:
    launcher = plan.request.tool.launcher
    conf_path = plan.facts.state_home / CONF_FILE
    offer = setting_offer(plan.request, plan.config, conf_path=conf_path, interactive=plan.facts.stdin_tty)
    if offer is None:
        return plan
    answer = _ask(f"{launcher}: {offer.ask}", stdin, stderr) if offer.ask is not None else None
    if answer is None or not accepts(answer):
        raise ImageError(offer.refusal)
    enable_setting(offer.setting, conf_path, user_home=plan.facts.user_home)
    print(f"{launcher}: wrote {offer.setting}=true to {conf_path} — rebuilding the image", file=stderr)
    return replan(dataclasses.replace(plan.request, build=True))


def enable_setting(key: str, conf_path: Path, *, user_home: Path) -> None:
    """Write `key=true` into `conf_path`, keeping every other line (the wizard's editor,
    `launch.init_plan`); atomically, never through a symlink, keeping the file's mode."""
    from cli.init import read_own
    from launch.init_plan import plan_init
    from supervisor.atomic import replace_atomically

    text = read_own(conf_path)
    planned = plan_init(text, "", {key: "true"}, user_home=user_home)
    try:
        mode = stat.S_IMODE(conf_path.stat().st_mode) if conf_path.exists() else 0o600
        conf_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_atomically(conf_path, planned.conf_text.encode("utf-8"), mode)
    except OSError as error:
        raise StateError(f"{conf_path}: cannot write: {error.strerror or error}") from None


def _replanned(plan: LaunchPlan, request: LaunchRequest) -> LaunchPlan:
    """The same launch with another request: planned again from the facts already read."""
    return plan_from_facts(request, plan.config, plan.facts, layout=plan.project, warnings=plan.warnings,
                           builder_api=plan.builder_api)


def _ask(question: str, stdin: TextIO, stderr: TextIO) -> str | None:
    """One line from the terminal after `question`; None at EOF."""
    stderr.write(question)
    stderr.flush()
    try:
        line = stdin.readline()
    except KeyboardInterrupt:
        stderr.write("\n")
        interrupted = LlmDockerError("interrupted — nothing started, nothing written")
        interrupted.exit_code = EXIT_INTERRUPTED
        raise interrupted from None
    if not line:
        stderr.write("\n")
        return None
    return line
