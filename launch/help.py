"""Help text of `cld` and `ocd` (printed without touching Docker or any file)."""

from __future__ import annotations

from launch.argv import MAX_SLOT, TmuxMode
from launch.tmux_tools import available, help_mark
from launch.tools import Tool

_COMMON = """\
Usage: {launcher} [DIRECTORY] [N] [FLAGS...] [-- {upper}_ARGS...]

Run {name} in a hardened Docker container, in DIRECTORY (default: the current folder).

Positional:
  DIRECTORY              project folder to mount (an existing directory)
  N                      open N slots at once (1..N), each in its own container

Sessions:
  -c, --continue [ID]    continue the last session here, or resume session ID
                         (a following existing directory or number is not taken as ID)
  --slot N               slot 1..{max_slot}: a tagged session that -c --slot N resumes

Windows:
  -d, --delay SEC        seconds between opening windows (default 0.5)

tmux (mutually exclusive; a mode whose INSTALL_TMUX_* is off offers to turn it on):
  -t,  --tmux            wrap {name} in tmux inside the container (inside a host tmux:
                         asks whether to run it bare in this pane or nest)
  -tt, --tmux-team [N]   a team in one tmux window: 1 lead + 3 stacked right (default);
                         N=2 side by side, 3 = 1 lead + 2 stacked, 4 = 2x2 grid;
                         the last pane (orange) is the runner{team_runner}
{tmux_extra}  -tc, --tmux-codeman    Codeman web UI on 127.0.0.1:3000{codeman_mark}
{unavailable_note}
builder-api:
  -a, --api [BOOL]       run builder-api with this launch (true/false/yes/no/on/off/1/0)
  -ab, --api-bg          run builder-api in the background
{safety}
Maintenance:
  --clean                remove containers left behind by dead launchers (never live ones)
  --build                rebuild the image where its inputs changed (layer cache)
  --rebuild-force        rebuild the image from scratch (no cache)
  --dry-run              print the container spec as JSON and exit; touches nothing
  --show-secrets         with --dry-run: print the secrets (API keys...) instead of ***
  -h, --help             this help
  --version              print the version

Everything after -- goes to {name} unchanged, e.g.
  {launcher} -- {example}

Config: $LLM_DOCKER_HOME/llm-docker.conf and .env (default ~/.llm-docker); see `llm-docker config`.
"""

_CLD_TMUX = """\
  -tr, --tmux-recon      recon session dashboard{recon_mark}
  -tcl, --tmux-claude    claude-tmux popup session manager{claude_mark}
"""

_UNAVAILABLE_NOTE = """\
                         [not available]: no registry this build installs from (Debian,
                         npm, PyPI) publishes the tool; the flag says why and exits
"""

_CLD_SAFETY = """
Permissions:
  --danger, --dg         skip Claude's permission prompts (default: DANGER_MODE=true)
  --safe, --no-danger    keep Claude's permission prompts
"""


def help_text(tool: Tool) -> str:
    claude = tool is Tool.CLAUDE
    modes = [TmuxMode.CODEMAN, *((TmuxMode.RECON, TmuxMode.CLAUDE_TMUX) if claude else ())]
    return _COMMON.format(
        launcher=tool.launcher,
        upper=tool.value.upper(),
        name="Claude Code" if claude else "OpenCode",
        max_slot=MAX_SLOT,
        tmux_extra=_CLD_TMUX.format(recon_mark=help_mark(TmuxMode.RECON),
                                    claude_mark=help_mark(TmuxMode.CLAUDE_TMUX)) if claude else "",
        codeman_mark=help_mark(TmuxMode.CODEMAN),
        unavailable_note=_UNAVAILABLE_NOTE if any(not available(mode) for mode in modes) else "",
        team_runner=": claude --model haiku" if claude else "",
        safety=_CLD_SAFETY if claude else "",
        example="--permission-mode plan" if claude else "--model anthropic/claude-sonnet-4",
    )
