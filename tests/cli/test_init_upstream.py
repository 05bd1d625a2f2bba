"""`llm-docker init --from-upstream DIR`: an upstream (bash) install built here file by file —
its checkout's conf and .env, its slot files, a Claude projects folder with session JSONL, an
OpenCode SQLite database — imported into a real state store; symlinks the agent could have
planted are never followed, and nothing of upstream's files is ever run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from testbed.processes import run, slots_json

FOO = "11111111-1111-4111-8111-111111111111"  # a session of ~/Projects/ai/foo
AI = "22222222-2222-4222-8222-222222222222"  # launched at the workspace root
PLANTED = "33333333-3333-4333-8333-333333333333"  # slot_3.id is a symlink to a file outside
LINKED = "44444444-4444-4444-8444-444444444444"  # its session exists only in a symlinked folder
ELSEWHERE = "55555555-5555-4555-8555-555555555555"  # launched outside the workspace
LIAR = "66666666-6666-4666-8666-666666666666"  # its JSONL names another folder than where it is
SECRET_OUTSIDE = "sk-ant-outside-the-checkout-must-never-be-read"

UPSTREAM_CONF = """\
# llm-docker.conf — upstream's tracked file
WORKSPACE_DIR=~/Projects/ai
DOCKER_DIR=/root/Projects
IS_S3C_GORILLA_ENABLED=true
SANDBOX_ENABLED=false
LLM_DOCKER_SSH_ENABLED=yes
LLM_DOCKER_SSH_PORT=22
LLM_DOCKER_SSH_HOST_PORT=9884
INSTALL_MEDIA=true
INSTALL_PHP=true
UPDATE_ON_START=true
NODE_ENV=$(touch {marker})
if [ -n "$HOME" ]; then touch {marker}; fi
"""
UPSTREAM_ENV = """\
OPENAI_API_KEY=
ZAI_API_KEY=zai-upstream-0123456789abcdef
ANTHROPIC_API_KEY=sk-ant-upstream-0123456789abcdef
LLM_DOCKER_SSH_AUTHORIZED_KEYS=ssh-rsa AAAA...ENf username@host
BUILDER_API_PASSWORD=YOUR_LLM_DOCKER_API_PASSWORD
CODEMAN_USERNAME=caveman
"""


def claude_session(claude: Path, folder: str, session: str, cwd: str) -> None:
    target = claude / "projects" / folder
    target.mkdir(parents=True, exist_ok=True)
    lines = [{"type": "summary"}, {"type": "user", "cwd": cwd, "sessionId": session, "message": "hi"}]
    (target / f"{session}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def build_upstream(home: Path, outside: Path, marker: Path, *, state: Path | None = None) -> Path:
    """An upstream checkout and its state (`~/.llm-docker`, or `state`); returns the checkout."""
    (home / "Projects" / "ai" / "foo").mkdir(parents=True)
    checkout = home / "src-checkouts" / "llm-docker"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "llm-docker.conf").write_text(UPSTREAM_CONF.format(marker=marker))
    (checkout / "src" / ".env").write_text(UPSTREAM_ENV)
    state = state or home / ".llm-docker"
    claude = state / "claude" / ".claude"
    claude_session(claude, "-root-Projects-foo", FOO, "/root/Projects/foo")
    claude_session(claude, "-root-Projects-ai", AI, "/root/Projects/ai")
    claude_session(claude, "-root-Projects-elsewhere", ELSEWHERE, "/root/Projects/elsewhere")
    claude_session(claude, "-root-Projects-foo", LIAR, "/home/u/.ssh")
    outside.mkdir(parents=True, exist_ok=True)
    claude_session(outside, "-root-Projects-foo", LINKED, "/root/Projects/foo")
    claude_session(outside, "-root-Projects-foo", PLANTED, "/root/Projects/foo")
    os.symlink(outside / "projects" / "-root-Projects-foo", claude / "projects" / "-root-Projects-linked")
    (outside / "slot").write_text(PLANTED + "\n")
    for slot, session in ((1, FOO), (2, AI), (4, LINKED), (5, ELSEWHERE), (6, LIAR)):
        (claude / f"slot_{slot}.id").write_text(session + "\n")
    os.symlink(outside / "slot", claude / "slot_3.id")
    (claude / "slot_7.id").write_text("not a session id\n")
    opencode = state / "opencode" / ".local" / "share" / "opencode"
    opencode.mkdir(parents=True)
    with sqlite3.connect(opencode / "opencode.db") as db:
        db.execute("CREATE TABLE session (id TEXT PRIMARY KEY, directory TEXT NOT NULL, time_created INTEGER)")
        db.executemany("INSERT INTO session VALUES (?,?,?)", [("ses_foo", "/root/Projects/foo", 1),
                                                              ("ses_gone", "/root/Projects/ai/gone", 2)])
    db.close()
    (opencode / "slot_1.id").write_text("ses_foo\n")
    (opencode / "slot_2.id").write_text("ses_gone\n")
    (opencode / "slot_3.id").write_text("ses_unknown\n")
    return checkout


def init(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("llm-docker", "init", "--yes", "--no-build", *args, cwd=home, home=home)


def conf_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_an_upstream_install_is_imported(user_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "upstream-code-ran"
    checkout = build_upstream(user_home, tmp_path / "outside", marker)
    result = init(user_home, "--from-upstream", str(checkout))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not marker.exists()  # upstream's conf is data: nothing in it ran

    state = user_home / ".llm-docker"
    conf = conf_values(state / "llm-docker.conf")
    env = conf_values(state / ".env")
    workspace = str(user_home / "Projects" / "ai")
    assert conf["WORKSPACE_DIR"] == workspace  # same names where they match, ~ expanded
    assert conf["SANDBOX_ENABLED"] == "false"  # upstream's choice, kept
    assert conf["LLM_DOCKER_SSH_ENABLED"] == "false"  # "yes" was OFF upstream (only "true" counted)
    assert (conf["LLM_DOCKER_SSH_HOST_PORT"], conf["INSTALL_MEDIA"], conf["UPDATE_ON_START"]) == ("9884", "true",
                                                                                                  "true")
    assert conf["CODEMAN_USERNAME"] == "caveman"
    for dropped in ("IS_S3C_GORILLA_ENABLED", "INSTALL_PHP", "LLM_DOCKER_SSH_PORT", "NODE_ENV", "DOCKER_DIR"):
        assert dropped not in conf
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-upstream-0123456789abcdef"
    assert env["ZAI_API_KEY"] == "zai-upstream-0123456789abcdef"
    assert "OPENAI_API_KEY" not in env and "LLM_DOCKER_SSH_AUTHORIZED_KEYS" not in env  # empty / a placeholder
    assert env["BUILDER_API_PASSWORD"] != "YOUR_LLM_DOCKER_API_PASSWORD" and len(env["BUILDER_API_PASSWORD"]) == 32
    for reason in ("upstream: dropped IS_S3C_GORILLA_ENABLED: the env-gorilla vault",
                   "upstream: dropped INSTALL_PHP: no PHP group here",
                   "upstream: dropped LLM_DOCKER_SSH_PORT: sshd runs unprivileged here",
                   "upstream: dropped BUILDER_API_PASSWORD: a placeholder",
                   "upstream: dropped LLM_DOCKER_SSH_AUTHORIZED_KEYS: a placeholder",
                   "upstream: dropped NODE_ENV: NODE_ENV: expected one of production, development",
                   "upstream: src/llm-docker.conf:13: not a KEY=VALUE line",
                   "upstream: LLM_DOCKER_SSH_ENABLED=yes meant false upstream"):
        assert reason in out, out

    # the slots, in the real state store: each with the project a launch from its folder uses
    slots = {(row["tool"], row["slot"]): row for row in slots_json(user_home)}
    assert set(slots) == {("claude", 1), ("claude", 2), ("opencode", 1)}
    assert (slots["claude", 1]["project"], slots["claude", 1]["session_id"]) == (f"{workspace}/foo", FOO)
    assert (slots["claude", 2]["project"], slots["claude", 2]["session_id"]) == (workspace, AI)
    assert (slots["opencode", 1]["project"], slots["opencode", 1]["session_id"]) == (f"{workspace}/foo", "ses_foo")
    unmapped = {line.split(":", 1)[0]: line for line in out.splitlines() if line.startswith("could not map")}
    assert set(unmapped) == {"could not map claude slot 3 (slot_3.id)", "could not map claude slot 4",
                             "could not map claude slot 5", "could not map claude slot 6",
                             "could not map claude slot 7 (slot_7.id)", "could not map opencode slot 2",
                             "could not map opencode slot 3"}
    assert "a symlink — not followed" in unmapped["could not map claude slot 3 (slot_3.id)"]
    assert "no session file" in unmapped["could not map claude slot 4"]  # only in the symlinked folder
    assert "upstream recorded only its name" in unmapped["could not map claude slot 5"]
    assert "does not match where it is kept" in unmapped["could not map claude slot 6"]
    assert "does not exist on this host" in unmapped["could not map opencode slot 2"]
    assert "no such session" in unmapped["could not map opencode slot 3"]
    assert PLANTED not in out  # the planted file was never opened
    # the imported Claude sessions are already where this install's launches look for them
    adopted = list((state / "projects").glob(f"foo-*/claude/.claude/projects/-root-Projects-foo/{FOO}.jsonl"))
    assert len(adopted) == 1 and not (state / "claude" / ".claude" / "projects" / "-root-Projects-foo").exists()

    # importing again keeps what is saved (and never duplicates it)
    again = init(user_home, "--from-upstream", str(checkout))
    assert again.returncode == 0, again.stderr
    assert {(row["tool"], row["slot"]) for row in slots_json(user_home)} == set(slots)


def test_upstream_files_behind_symlinks_are_not_read(user_home: Path, tmp_path: Path) -> None:
    checkout = user_home / "upstream"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "llm-docker.conf").write_text("INSTALL_CPP=true\n")
    secret = tmp_path / "secret.env"
    secret.write_text(f"ANTHROPIC_API_KEY={SECRET_OUTSIDE}\n")
    os.symlink(secret, checkout / "src" / ".env")
    result = init(user_home, "--from-upstream", str(checkout), "--upstream-state", str(tmp_path / "no-state"))
    assert result.returncode == 0, result.stderr
    assert "upstream: src/.env: not read — is a symlink" in result.stdout
    written = (user_home / ".llm-docker" / ".env").read_text()
    assert SECRET_OUTSIDE not in written and SECRET_OUTSIDE not in result.stdout + result.stderr
    assert "INSTALL_CPP=true" in (user_home / ".llm-docker" / "llm-docker.conf").read_text()


def test_a_checkout_whose_src_is_a_symlink_is_refused(user_home: Path, tmp_path: Path) -> None:
    checkout = user_home / "upstream"
    checkout.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".env").write_text(f"ANTHROPIC_API_KEY={SECRET_OUTSIDE}\n")
    os.symlink(tmp_path / "elsewhere", checkout / "src")
    result = init(user_home, "--from-upstream", str(checkout))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not read" in result.stderr and SECRET_OUTSIDE not in result.stderr
    assert not (user_home / ".llm-docker").exists()


def test_with_another_state_folder_the_claude_sessions_stay_and_it_says_so(user_home: Path, tmp_path: Path) -> None:
    upstream_state = tmp_path / "old-home" / ".llm-docker"
    checkout = build_upstream(user_home, tmp_path / "outside", tmp_path / "marker", state=upstream_state)
    result = init(user_home, "--from-upstream", str(checkout), "--upstream-state", str(upstream_state))
    assert result.returncode == 0, result.stderr
    assert {(row["tool"], row["slot"]) for row in slots_json(user_home)} == {("claude", 1), ("claude", 2),
                                                                             ("opencode", 1)}
    assert f"its session stays in {upstream_state}" in result.stdout
    assert (upstream_state / "claude" / ".claude" / "projects" / "-root-Projects-foo" / f"{FOO}.jsonl").exists()


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_slot_file_that_is_not_a_small_regular_file_is_reported(user_home: Path, tmp_path: Path,
                                                                   kind: str) -> None:
    checkout = build_upstream(user_home, tmp_path / "outside", tmp_path / "marker")
    slot = user_home / ".llm-docker" / "claude" / ".claude" / "slot_1.id"
    slot.unlink()
    if kind == "fifo":
        os.mkfifo(slot)  # opening it for reading would block a naive reader forever
    else:
        slot.write_text(FOO + "\n" + "x" * 10_000)
    result = init(user_home, "--from-upstream", str(checkout))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("could not map claude slot 1 "))
    assert ("is FIFO" if kind == "fifo" else "larger than 4 KiB") in line
    assert ("claude", 1) not in {(row["tool"], row["slot"]) for row in slots_json(user_home)}
