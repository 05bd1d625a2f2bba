"""The container's `Cmd`: the tool, its session flags, the boot prompt and the passthrough.

The session itself (fresh / continue / resume) is modelled in `launch.session`; this module
only renders a chosen session as the tool's flags.

All launch logic lives on the host; the image's entrypoint only prepares the environment
and `exec`s this command, so any image with the tool on PATH can run it.
"""

from __future__ import annotations

from launch.argv import LaunchRequest, TmuxMode
from launch.session import SessionChoice, SessionKind
from launch.tools import Tool

CLAUDE_MD_PROMPT = "Read ./CLAUDE.md in full and follow its BOOT steps before anything else."
TMUX_SESSION = "llm-docker"
TMUX_HELPER = "llm-docker-tmux"
CODEMAN_PORT = 3000
#: `-tt N` → the helper's team layout; plain `-tt` (no N) is the lead with three panes
#: stacked beside it, which differs from the explicit `-tt 4` grid.
TEAM_LAYOUTS: dict[int | None, str] = {None: "lead3", 2: "pair", 3: "lead2", 4: "grid"}

#: Passthrough flags that choose a session themselves: the launcher then adds no session
#: flag and no boot prompt of its own.
_SESSION_FLAGS = {
    Tool.CLAUDE: {"-c", "--continue", "-r", "--resume", "--session-id", "--fork-session"},
    Tool.OPENCODE: {"-c", "--continue", "-s", "--session"},
}
#: Passthrough flags that bring their own prompt (one-shot modes): no boot prompt.
_PROMPT_FLAGS = {
    Tool.CLAUDE: {"-p", "--print"},
    Tool.OPENCODE: {"--prompt"},
}


def tool_command(request: LaunchRequest, session: SessionChoice, *, danger: bool,
                 boot_prompt: str | None) -> list[str]:
    """The argv of the tool itself (`claude ...` / `opencode ...`)."""
    tool = request.tool
    given = {arg.split("=", 1)[0] for arg in request.passthrough}
    user_chooses_session = bool(given & _SESSION_FLAGS[tool])
    # a leading word is an OpenCode subcommand (`run "msg"`) and carries its own prompt
    brings_prompt = bool(given & _PROMPT_FLAGS[tool]) or (
        tool is Tool.OPENCODE and bool(request.passthrough) and not request.passthrough[0].startswith("-"))
    argv = [tool.value]
    if tool is Tool.CLAUDE and danger:
        argv.append("--dangerously-skip-permissions")
    if not user_chooses_session:
        argv += _session_flags(tool, session)
        if session.kind is SessionKind.FRESH and boot_prompt and not brings_prompt:
            argv += [boot_prompt] if tool is Tool.CLAUDE else ["--prompt", boot_prompt]
    argv += request.passthrough
    return argv


def _session_flags(tool: Tool, session: SessionChoice) -> list[str]:
    if session.kind is SessionKind.RESUME:
        assert session.session_id is not None
        return ["--resume" if tool is Tool.CLAUDE else "--session", session.session_id]
    if session.kind is SessionKind.CONTINUE:
        return ["--continue"]
    if tool is Tool.CLAUDE and session.session_id is not None:
        return ["--session-id", session.session_id]
    return []


def boot_prompt_for(boot_file_text: str | None, has_claude_md: bool) -> str | None:
    """BOOT.md verbatim, else a pointer to CLAUDE.md, else nothing."""
    if boot_file_text:
        return boot_file_text
    return CLAUDE_MD_PROMPT if has_claude_md else None


def container_command(request: LaunchRequest, tool_argv: list[str]) -> list[str]:
    """Wrap the tool argv for the requested tmux mode.

    Recon and Codeman are dashboards that start agents themselves, so they get no tool
    argv (upstream handed them Claude's flags; docs/upstream.md#tmux-dashboards).
    """
    mode = request.tmux
    if mode is TmuxMode.NONE:
        return tool_argv
    if mode is TmuxMode.PLAIN:
        return ["tmux", "new-session", "-A", "-s", TMUX_SESSION, *tool_argv]
    if mode is TmuxMode.TEAM:
        return [TMUX_HELPER, "team", "--layout", TEAM_LAYOUTS[request.team_size], "--", *tool_argv]
    if mode is TmuxMode.CLAUDE_TMUX:
        return [TMUX_HELPER, "claude-tmux", "--", *tool_argv]
    if mode is TmuxMode.RECON:
        return [TMUX_HELPER, "recon"]
    return [TMUX_HELPER, "codeman", "--port", str(CODEMAN_PORT)]
