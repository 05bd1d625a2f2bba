"""The tmux modes' needs, decided purely (`launch.tmux_tools`): which modes this build cannot
give and the one line that says so, which `INSTALL_TMUX_*` a mode needs and what to ask or say
when it is off, and `-t` inside a host tmux. No terminal, no files, no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.argv import LaunchRequest, TmuxMode, parse_argv
from launch.config import ENVIRONMENT_SOURCE, Config
from launch.help import help_text
from launch.tmux_tools import (
    SETTINGS,
    UNAVAILABLE,
    Nesting,
    accepts,
    bare,
    nest_answer,
    nesting,
    setting_offer,
    unavailable_reason,
)
from launch.tools import Tool

CONF = Path("/home/u/.llm-docker/llm-docker.conf")
INSIDE_TMUX = {"TMUX": "/tmp/tmux-1000/default,1,0", "TMUX_PANE": "%1"}


def request(line: str, tool: Tool = Tool.CLAUDE) -> LaunchRequest:
    parsed = parse_argv(tool, line.split(), cwd=Path("/home/u/app"), is_dir=lambda p: False)
    assert isinstance(parsed, LaunchRequest)
    return parsed


# -- modes this build cannot give -------------------------------------------------------------

@pytest.mark.parametrize(("line", "tool", "names"), [
    ("-tr", Tool.CLAUDE, ("gavraz/recon", "cargo")),
    ("-tc", Tool.CLAUDE, ("Ark0N/Codeman", "curl | bash")),
    ("-tc", Tool.OPENCODE, ("Ark0N/Codeman", "curl | bash")),
    ("-tcl", Tool.CLAUDE, ("nielsgroen/claude-tmux", "cargo")),
])
def test_a_mode_without_its_tool_is_one_line_naming_the_registries_and_the_alternative(
        line: str, tool: Tool, names: tuple[str, ...]) -> None:
    reason = unavailable_reason(request(line, tool))
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"{line} is not available: ")
    for checked in ("npm", "PyPI", "Debian", *names):
        assert checked in reason
    assert "-t " in reason or reason.endswith("-t runs claude in tmux")  # what to use instead


@pytest.mark.parametrize("line", ["", "-t", "-tt", "-tt 2", "-tt 4"])
def test_the_modes_this_build_installs_are_not_refused(line: str) -> None:
    assert unavailable_reason(request(line)) is None


def test_help_marks_exactly_the_modes_that_cannot_work() -> None:
    flags = {TmuxMode.RECON: "--tmux-recon", TmuxMode.CODEMAN: "--tmux-codeman",
             TmuxMode.CLAUDE_TMUX: "--tmux-claude", TmuxMode.PLAIN: "--tmux ", TmuxMode.TEAM: "--tmux-team"}
    text = help_text(Tool.CLAUDE)
    for mode, flag in flags.items():
        [line] = [line for line in text.splitlines() if flag in line]
        assert line.endswith("[not available]") == (mode in UNAVAILABLE), line
    assert "[not available]: no registry" in text
    opencode = help_text(Tool.OPENCODE)
    assert "--tmux-recon" not in opencode
    assert [line for line in opencode.splitlines() if "--tmux-codeman" in line][0].endswith("[not available]")


# -- the first-use offer ----------------------------------------------------------------------

@pytest.mark.parametrize(("line", "setting"), [("-t", "INSTALL_TMUX_VANILLA"), ("-tt", "INSTALL_TMUX_TEAM"),
                                               ("-tt 3", "INSTALL_TMUX_TEAM")])
def test_a_mode_whose_setting_is_off_asks_on_a_terminal_and_names_the_fix(line: str, setting: str) -> None:
    config = Config(**{setting.lower(): False})  # type: ignore[arg-type]  # one boolean setting
    offer = setting_offer(request(line), config, conf_path=CONF, interactive=True)
    assert offer is not None
    assert offer.setting == setting
    assert offer.ask is not None and offer.ask.endswith(f"enable {setting} and rebuild the image? [y/N] ")
    assert offer.refusal.endswith(f"set {setting}=true in {CONF} and run cld --build")
    quiet = setting_offer(request(line), config, conf_path=CONF, interactive=False)
    assert quiet is not None and quiet.ask is None and quiet.refusal == offer.refusal


def test_every_mode_needs_its_own_setting_as_upstream_scanned_them() -> None:
    assert SETTINGS == {TmuxMode.PLAIN: "INSTALL_TMUX_VANILLA", TmuxMode.TEAM: "INSTALL_TMUX_TEAM",
                        TmuxMode.RECON: "INSTALL_TMUX_RECON", TmuxMode.CODEMAN: "INSTALL_TMUX_CODEMAN",
                        TmuxMode.CLAUDE_TMUX: "INSTALL_TMUX_CLAUDE"}


def test_the_fix_names_the_launcher_that_was_run() -> None:
    offer = setting_offer(request("-t", Tool.OPENCODE), Config(install_tmux_vanilla=False), conf_path=CONF,
                          interactive=False)
    assert offer is not None and offer.refusal.endswith("and run ocd --build")


@pytest.mark.parametrize(("line", "config"), [
    ("-t", Config()),  # on by default
    ("-tt", Config()),
    ("", Config(install_tmux_vanilla=False, install_tmux_team=False)),  # no tmux mode
    ("-t --dry-run", Config(install_tmux_vanilla=False)),  # a dry run touches nothing
    ("-t", Config(install_tmux_vanilla=False, llm_docker_image="mine:1")),  # not our image to build
    ("-tr", Config()),  # refused before: this build cannot install recon at all
])
def test_nothing_is_offered_when_nothing_is_missing_or_nothing_could_be_done(line: str, config: Config) -> None:
    assert setting_offer(request(line), config, conf_path=CONF, interactive=True) is None


def test_a_setting_the_environment_turns_off_is_not_offered_for_the_file() -> None:
    config = Config(install_tmux_vanilla=False, sources={"INSTALL_TMUX_VANILLA": ENVIRONMENT_SOURCE})
    offer = setting_offer(request("-t"), config, conf_path=CONF, interactive=True)
    assert offer is not None and offer.ask is None
    assert "your environment sets to false" in offer.refusal and "unset it" in offer.refusal


def test_a_setting_turned_off_in_the_secrets_file_is_not_offered_for_the_conf() -> None:
    config = Config(install_tmux_vanilla=False, sources={"INSTALL_TMUX_VANILLA": f"{CONF.parent}/.env:3"})
    offer = setting_offer(request("-t"), config, conf_path=CONF, interactive=True)
    assert offer is not None and offer.ask is None
    assert f"set INSTALL_TMUX_VANILLA=true in {CONF.parent}/.env" in offer.refusal


@pytest.mark.parametrize(("answer", "yes"), [("y\n", True), ("Y", True), (" yes \n", True), ("", False),
                                             ("\n", False), ("n\n", False), ("no", False), ("yes please", False)])
def test_only_a_yes_accepts(answer: str, yes: bool) -> None:
    assert accepts(answer) is yes


# -- -t inside a host tmux --------------------------------------------------------------------

@pytest.mark.parametrize(("line", "environ", "interactive", "expected"), [
    ("-t", INSIDE_TMUX, True, Nesting.ASK),
    ("-t", INSIDE_TMUX, False, Nesting.BARE),
    ("-t", {}, True, Nesting.NONE),
    ("-t", {"TMUX": ""}, True, Nesting.NONE),
    ("-tt", INSIDE_TMUX, True, Nesting.NONE),  # the team never nests (its own server)
    ("", INSIDE_TMUX, True, Nesting.NONE),
    ("2 -t", INSIDE_TMUX, True, Nesting.NONE),  # supervised: the windows are planned elsewhere
])
def test_t_inside_tmux_asks_on_a_terminal_and_runs_bare_without_one(
        line: str, environ: dict[str, str], interactive: bool, expected: Nesting) -> None:
    assert nesting(request(line), environ, interactive=interactive) is expected


@pytest.mark.parametrize(("answer", "nest"), [("\n", False), ("1\n", False), (" 1 ", False), ("2\n", True),
                                              ("3\n", None), ("y\n", None)])
def test_the_nesting_menu_defaults_to_bare_and_asks_again_on_anything_else(answer: str, nest: bool | None) -> None:
    assert nest_answer(answer) is nest


def test_bare_drops_only_the_tmux_wrapper() -> None:
    original = request("-t --slot 3 -- --model opus")
    assert bare(original) == LaunchRequest(**{**original.__dict__, "tmux": TmuxMode.NONE})
