"""The tmux modes' needs, decided before anything happens: is the mode's tool to be had at
all, which build setting it needs, and what to do when the host already runs tmux.

Every `-t*` flag needs a build-time group (`INSTALL_TMUX_*`, `image/groups.py`). Three of
them named a third-party tool that upstream fetched from GitHub; this build installs only
from Debian's packages, npm and PyPI, and none of them publishes these tools (checked with
the registries' own clients: see `UNAVAILABLE`). Rather than start a container whose
command exits 127, such a mode is refused with one line that says why — before any
prompt, build or engine contact.

For a mode that can work but whose setting is off, `cli/tmux_offer.py` asks (on a terminal)
whether to turn it on and rebuild; what to ask and what to say instead is decided here,
purely: `setting_offer`. `-t` inside a host tmux (`$TMUX` set): `nesting` decides between
running the tool bare in the current pane and nesting tmux.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path

from launch.argv import LaunchRequest, TmuxMode
from launch.config import ENVIRONMENT_SOURCE, SECRETS_FILE, Config

#: The flag a mode is asked for with (as in `--help`).
FLAGS: dict[TmuxMode, str] = {
    TmuxMode.PLAIN: "-t", TmuxMode.TEAM: "-tt", TmuxMode.RECON: "-tr",
    TmuxMode.CODEMAN: "-tc", TmuxMode.CLAUDE_TMUX: "-tcl",
}

#: The build setting each mode needs (upstream's pre-scan: one setting per flag).
SETTINGS: dict[TmuxMode, str] = {
    TmuxMode.PLAIN: "INSTALL_TMUX_VANILLA", TmuxMode.TEAM: "INSTALL_TMUX_TEAM",
    TmuxMode.RECON: "INSTALL_TMUX_RECON", TmuxMode.CODEMAN: "INSTALL_TMUX_CODEMAN",
    TmuxMode.CLAUDE_TMUX: "INSTALL_TMUX_CLAUDE",
}

#: Why a mode's tool cannot be in the image. Registries checked: npm (`npm view`), PyPI
#: (`pip download`), Debian bookworm (`apt-cache`); a crate counts only if Debian's rustc
#: (1.63) can build it. When a registry starts publishing one, install it in its group
#: (`image/groups.py`) and drop its entry here.
UNAVAILABLE: dict[TmuxMode, str] = {
    TmuxMode.RECON: (
        "gavraz/recon is in no registry this build installs from (npm's and PyPI's `recon` are "
        "unrelated packages, Debian has none; it is a Rust crate needing a newer rustc than "
        "Debian's 1.63) — upstream built it with cargo from GitHub; -t or -tt run the agent in tmux"),
    TmuxMode.CODEMAN: (
        "Ark0N/Codeman is in no registry this build installs from (npm has no `aicodeman` or "
        "`codeman`, nor PyPI or Debian) — upstream ran its `curl | bash` installer from GitHub; "
        "-t or -tt run the agent in tmux"),
    TmuxMode.CLAUDE_TMUX: (
        "nielsgroen/claude-tmux is in no registry this build installs from (PyPI's `claude-tmux` "
        "is another project, npm and Debian have none; it is a Rust crate needing a newer rustc "
        "than Debian's 1.63) — upstream built it with cargo from GitHub; -t runs claude in tmux"),
}


def available(mode: TmuxMode) -> bool:
    """Whether this build can give the mode at all (independent of the user's settings)."""
    return mode not in UNAVAILABLE


def unavailable_reason(request: LaunchRequest) -> str | None:
    """The one line that refuses the request's tmux mode, or None when it can work."""
    why = UNAVAILABLE.get(request.tmux)
    if why is None:
        return None
    return f"{FLAGS[request.tmux]} is not available: {why}"


@dataclasses.dataclass(frozen=True)
class SettingOffer:
    """The request's tmux mode needs `setting`, which is not true in the user's config.

    `ask` is the question (None: do not ask — no terminal, or the setting comes from the
    environment, where writing the file would not help); `refusal` is the one line printed
    when the answer is no (or there is no question), with the exact fix.
    """

    setting: str
    conf_path: Path
    ask: str | None
    refusal: str


def setting_offer(request: LaunchRequest, config: Config, *, conf_path: Path, interactive: bool) -> SettingOffer | None:
    """What to do about a tmux mode whose build setting is off; None when nothing is missing.

    Nothing is offered for a mode that is not available at all (it was refused already), for
    a custom `LLM_DOCKER_IMAGE` (llm-docker does not build it) or with `--dry-run` (which
    touches nothing).
    """
    mode = request.tmux
    setting = SETTINGS.get(mode)
    if setting is None or not available(mode) or request.dry_run or config.llm_docker_image:
        return None
    if getattr(config, setting.lower()):
        return None
    launcher = request.tool.launcher
    flag = FLAGS[mode]
    source = config.sources.get(setting, "")
    if source == ENVIRONMENT_SOURCE:
        return SettingOffer(setting, conf_path, None,
                            f"{flag} needs {setting}, which your environment sets to false (the environment wins "
                            f"over {conf_path}): unset it and run {launcher} --build")
    secrets_path = conf_path.with_name(SECRETS_FILE)
    if source.startswith(f"{secrets_path}:"):
        return SettingOffer(setting, conf_path, None,
                            f"{flag} needs {setting}: set {setting}=true in {secrets_path} (which wins over "
                            f"{conf_path.name}) and run {launcher} --build")
    refusal = f"{flag} needs {setting}: set {setting}=true in {conf_path} and run {launcher} --build"
    question = f"{flag} needs {setting}, which is off: enable {setting} and rebuild the image? [y/N] "
    return SettingOffer(setting, conf_path, question if interactive else None, refusal)


def accepts(answer: str) -> bool:
    """A yes to the [y/N] question (anything else, and EOF's "", is no)."""
    return answer.strip().lower() in ("y", "yes")


class Nesting(enum.Enum):
    """What `-t` does when the launcher already runs inside a host tmux."""

    #: Not applicable: not `-t`, not inside tmux, or a supervised launch (windows decide).
    NONE = "none"
    #: On a terminal: ask (`NEST_QUESTION`).
    ASK = "ask"
    #: No terminal to ask on: run the tool bare, with `BARE_NOTICE`.
    BARE = "bare"


NEST_QUESTION = ("you are already inside tmux: [1] run {name} bare in this pane (no tmux in the container), "
                 "[2] nest tmux anyway (Ctrl+b Ctrl+b reaches the inner one) [1/2, default 1] ")
BARE_NOTICE = "already inside tmux: running {name} bare in this pane (-t asks on a terminal whether to nest)"


def nesting(request: LaunchRequest, environ: Mapping[str, str], *, interactive: bool) -> Nesting:
    """`-t` inside a host tmux (`$TMUX` set): ask on a terminal, else run bare.

    Upstream asked too (and its "detach first" choice exited 0 without launching); the two
    choices left are the ones that launch. `-tt` never nests (its helper talks to the
    container's own tmux server only), and a supervised launch's windows are planned by
    `launch/layout.py`.
    """
    if request.tmux is not TmuxMode.PLAIN or request.supervised or not environ.get("TMUX"):
        return Nesting.NONE
    return Nesting.ASK if interactive else Nesting.BARE


def nest_answer(answer: str) -> bool | None:
    """The menu's answer: True = nest, False = bare (Enter, 1), None = ask again."""
    text = answer.strip()
    if text in ("", "1"):
        return False
    if text == "2":
        return True
    return None


def bare(request: LaunchRequest) -> LaunchRequest:
    """The request without its tmux wrapper."""
    return dataclasses.replace(request, tmux=TmuxMode.NONE)


def help_mark(mode: TmuxMode) -> str:
    """What `--help` appends to a mode's line: a mark when the mode cannot work here."""
    return "" if available(mode) else " [not available]"
