"""`launch/init_plan.py`: answers → the new text of `llm-docker.conf` and `.env`, and the
upstream installer's settings mapped. Pure: strings in, strings out."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from launch.envfile import parse_env_text
from launch.errors import ConfigError
from launch.init_plan import (
    DEVPACKS,
    TMUX_HELPERS,
    group_answers,
    lenient_entries,
    looks_like_placeholder,
    map_upstream_settings,
    mask,
    parse_choices,
    plan_init,
    render_line,
)

HOME = Path("/home/u")


def parsed(text: str) -> dict[str, str]:
    return {entry.key: entry.value for entry in parse_env_text(text, origin="t", home=HOME)}


@given(st.text(max_size=80))
def test_every_written_value_reads_back_the_same_or_is_refused(value: str) -> None:
    try:
        line = render_line("KEY", value)
    except ValueError:
        # only what the file format cannot hold: a leading ~ (expanded), line breaks other than \n
        assert value.startswith("~") or len(("x" + value.replace("\n", "") + "x").splitlines()) > 1
        return
    assert parsed(line) == {"KEY": value}


@pytest.mark.parametrize(("value", "line"), [
    ("true", "KEY=true"),
    ("/home/u/Projects/ai", "KEY=/home/u/Projects/ai"),
    ("@npm github.com", "KEY='@npm github.com'"),
    ("a#b", "KEY='a#b'"),
    ("it's", 'KEY="it\'s"'),
    ("line1\nline2", 'KEY="line1\\nline2"'),
    ('q"\\$x', "KEY='q\"\\$x'"),
])
def test_values_are_spelled_plainly_when_they_can_be(value: str, line: str) -> None:
    assert render_line("KEY", value) == line


def test_a_value_that_cannot_read_back_is_refused() -> None:
    with pytest.raises(ValueError, match="reads back"):
        render_line("KEY", "~/x")
    with pytest.raises(ValueError, match="reads back"):
        render_line("KEY", "a\rb")


USER_CONF = """\
# my own notes about llm-docker
WORKSPACE_DIR="/home/u/old"   # moved later
export NODE_ENV='development'

ANTHROPIC_API_KEY=sk-ant-in-the-wrong-file-0001
WORKSPACE_DIR=/home/u/duplicate
DEBUG=true
"""


def test_answers_edit_the_users_file_in_place() -> None:
    plan = plan_init(USER_CONF, "", {"WORKSPACE_DIR": "/home/u/Projects/ai", "NODE_ENV": "development",
                                     "ANTHROPIC_API_KEY": "sk-ant-in-the-wrong-file-0001", "DEBUG": ""},
                     user_home=HOME)
    assert plan.conf_text == (
        "# my own notes about llm-docker\n"
        "WORKSPACE_DIR=/home/u/Projects/ai\n"  # replaced where it was; the later duplicate is gone
        "export NODE_ENV='development'\n"  # already says so: kept byte for byte
    )  # the secret moved to .env, DEBUG removed (the default applies), no trailing blank line
    assert plan.env_text == ("# llm-docker secrets — keep this file private (chmod 600)\n\n"
                             "# Anthropic API key (skip if you use /login)\n"
                             "ANTHROPIC_API_KEY=sk-ant-in-the-wrong-file-0001\n")
    assert {change.key for change in plan.changes} == {"WORKSPACE_DIR", "ANTHROPIC_API_KEY", "DEBUG"}


def test_new_keys_are_appended_with_what_they_mean() -> None:
    plan = plan_init("A_UNRELATED=1\n", "", {"LAN_ACCESS": "false", "EGRESS_ALLOW": ""}, user_home=HOME)
    assert plan.conf_text == ("A_UNRELATED=1\n\n# false = the LAN (10/8, 172.16/12, 192.168/16, fc00::/7) "
                              "is closed too\nLAN_ACCESS=false\n")
    assert plan.env_text == ""  # nothing to keep secret: no file, and never an empty value


@pytest.mark.parametrize("value", ["YOUR_LLM_DOCKER_API_PASSWORD", "your-key-here", "<anthropic key>", "changeme",
                                   "sk-ant-...", "xxxxxxxx", "****abcd"])
def test_placeholders_are_never_written(value: str) -> None:
    assert looks_like_placeholder(value)
    with pytest.raises(ConfigError, match="placeholder"):
        plan_init("", "", {"BUILDER_API_PASSWORD": value}, user_home=HOME)


def test_real_secrets_are_not_placeholders() -> None:
    assert not looks_like_placeholder("sk-ant-api03-Zx8f0c1d2e3f4a5b6c7d8e9f")
    assert not looks_like_placeholder("t_qneXlSmA986sfNLlNZNerKjMG7IOqv")


def test_secrets_are_masked_to_their_last_four_only_when_long() -> None:
    assert mask("") == "(not set)"
    assert mask("short-pass") == "****"
    assert mask("sk-ant-api03-abcdefghijkl") == "****ijkl"


def test_group_choices() -> None:
    assert parse_choices("team, Codeman") == ["team", "codeman"]
    assert parse_choices("none") == []
    assert group_answers(["team"], TMUX_HELPERS)["INSTALL_TMUX_TEAM"] == "true"
    assert set(group_answers([], DEVPACKS).values()) == {"false"}
    with pytest.raises(ConfigError, match="unknown choice 'php'"):
        group_answers(["php"], DEVPACKS)


UPSTREAM_CONF = """\
# upstream's tracked conf
WORKSPACE_DIR=~/Projects/ai
SANDBOX_ENABLED=no
INTERNET_ACCESS=False
LLM_DOCKER_SSH_ENABLED=yes
INSTALL_MEDIA=on
EXIT_TO_DOCKER=true
LLM_DOCKER_SSH_PORT=22
IS_S3C_GORILLA_ENABLED=true
INSTALL_PHP=true
SOMETHING_ELSE=1
ANTHROPIC_BASE_URL=not a url
if [ -n "$X" ]; then rm -rf ~; fi
"""
UPSTREAM_ENV = """\
OPENAI_API_KEY=
BUILDER_API_PASSWORD=YOUR_LLM_DOCKER_API_PASSWORD
LLM_DOCKER_SSH_AUTHORIZED_KEYS=ssh-rsa AAAA...ENf username@host
ZAI_API_KEY="zai-0123456789abcdef"
export ANTHROPIC_API_KEY='sk-ant-upstream-0123456789'
"""


def test_upstream_settings_are_mapped_by_upstreams_own_rules() -> None:
    conf, skipped = lenient_entries(UPSTREAM_CONF, origin="src/llm-docker.conf", user_home=HOME)
    env, _ = lenient_entries(UPSTREAM_ENV, origin="src/.env", user_home=HOME)
    assert skipped == [("src/llm-docker.conf:13", "not a KEY=VALUE line this version reads (shell syntax?)")]
    mapped = map_upstream_settings(conf, env)
    assert mapped.values == {
        "WORKSPACE_DIR": "/home/u/Projects/ai",
        "SANDBOX_ENABLED": "true",  # upstream: ON unless exactly "false"
        "INTERNET_ACCESS": "true",  # "False" is not exactly "false": it was ON
        "LLM_DOCKER_SSH_ENABLED": "false",  # upstream: ON only if exactly "true"
        "INSTALL_MEDIA": "true",  # INSTALL_* took true/yes/on/1
        "EXIT_TO_DOCKER": "true",
        "ZAI_API_KEY": "zai-0123456789abcdef",
        "ANTHROPIC_API_KEY": "sk-ant-upstream-0123456789",
    }
    dropped = dict(mapped.dropped)
    assert set(dropped) == {"LLM_DOCKER_SSH_PORT", "IS_S3C_GORILLA_ENABLED", "INSTALL_PHP", "SOMETHING_ELSE",
                            "ANTHROPIC_BASE_URL", "BUILDER_API_PASSWORD", "LLM_DOCKER_SSH_AUTHORIZED_KEYS"}
    assert "capability" in dropped["LLM_DOCKER_SSH_PORT"]
    assert "placeholder" in dropped["BUILDER_API_PASSWORD"]
    assert [note.split("=")[0] for note in mapped.notes] == ["SANDBOX_ENABLED", "INTERNET_ACCESS",
                                                             "LLM_DOCKER_SSH_ENABLED"]
    assert (mapped.workspace, mapped.docker_dir) == ("/home/u/Projects/ai", "/root")  # upstream's DOCKER_DIR default


def test_a_shell_line_of_upstreams_env_is_skipped_without_echoing_it() -> None:
    _, skipped = lenient_entries("ANTHROPIC_API_KEY='sk-ant-unterminated-secret\n", origin="src/.env", user_home=HOME)
    assert len(skipped) == 1 and "sk-ant" not in repr(skipped)
