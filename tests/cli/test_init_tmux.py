"""The `llm-docker init` wizard in a real terminal: a tmux server of its own (`tmux -L`),
answers typed with send-keys as each prompt appears — it must write exactly what the flag run
writes. Only this test's tmux server is ever killed."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.isolation import TEST_ENV
from testbed.processes import REPO, wait_until
from tests.cli.test_init import ANTHROPIC, OPENAI, PASSWORD, flags, public_key

PROMPT_SECONDS = 60


class Terminal:
    """One tmux server on its own socket, running one command in a wide pane."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"llm-docker-test-init-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "HOME": env["HOME"]}
        shell = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        script = f"env -i {shell} {shlex.join(command)}; echo INIT-EXIT=$?; sleep 600"
        self.tmux(["new-session", "-d", "-x", "250", "-y", "80", "sh", "-c", script])
        self.socket_path = Path(self.tmux(["display-message", "-p", "#{socket_path}"]).strip())

    def tmux(self, args: list[str]) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.tmux(["capture-pane", "-p", "-S", "-200"])

    def lines(self) -> list[str]:
        return [line for line in self.screen().splitlines() if line.strip()]

    def answer(self, prompt: str, text: str = "") -> None:
        """Wait for `prompt` on the last line, type `text` and Enter, and wait for what follows
        (the next prompt, or the refusal and the same prompt again)."""
        wait_until(lambda: prompt in (self.lines() or [""])[-1], PROMPT_SECONDS)
        shown = len(self.lines())
        if text:
            self.tmux(["send-keys", "-l", "--", text])
        self.tmux(["send-keys", "Enter"])
        wait_until(lambda: len(self.lines()) > shown, PROMPT_SECONDS)

    def close(self) -> None:
        """Kill this test's server (only it: its own socket) and remove the socket it leaves."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=30)
        self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing (scripts/test installs it)", pytrace=False)
    started: list[Terminal] = []
    yield started
    for terminal in started:
        terminal.close()


INIT = [sys.executable, "-c", "from cli.admin import main; main()", "init"]


def setting_up(user_home: Path) -> tuple[dict[str, str], Path]:
    """A workspace and a key in ~/.ssh; the files the flag run writes (in `.scripted`)."""
    workspace = user_home / "Projects" / "ai"
    workspace.mkdir(parents=True)
    (user_home / ".ssh").mkdir()
    key_file = user_home / ".ssh" / "laptop.pub"
    key_file.write_text(public_key("me@laptop") + "\n")
    base = {"HOME": str(user_home), "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
            "TERM": "xterm-256color", **TEST_ENV}
    scripted = user_home / ".scripted"
    flagged = subprocess.run([*INIT, *flags(workspace, key_file)], capture_output=True, text=True, timeout=60,
                             env={**base, "LLM_DOCKER_HOME": str(scripted), "ANTHROPIC_API_KEY": ANTHROPIC,
                                  "OPENAI_API_KEY": OPENAI})
    assert flagged.returncode == 0, flagged.stderr
    return base, scripted


def test_the_wizard_writes_what_the_flags_write(user_home: Path, terminals: list[Terminal]) -> None:
    base, scripted = setting_up(user_home)
    workspace, asked = user_home / "Projects" / "ai", user_home / ".asked"
    terminal = Terminal([*INIT, "--no-build"], {**base, "LLM_DOCKER_HOME": str(asked)})
    terminals.append(terminal)
    terminal.answer("(WORKSPACE_DIR;", str(workspace))
    terminal.answer("(ANTHROPIC_API_KEY;", ANTHROPIC)  # typed hidden
    terminal.answer("(ANTHROPIC_BASE_URL;", "ftp://wrong.example.org")  # refused, asked again
    terminal.answer("(ANTHROPIC_BASE_URL;", "https://llm.example.org/anthropic")
    terminal.answer("(OPENAI_API_KEY;", OPENAI)
    terminal.answer("(OPENAI_BASE_URL;")
    terminal.answer("(ZAI_API_KEY;")
    terminal.answer("(LLM_DOCKER_SSH_ENABLED)", "y")
    terminal.answer("Trust which?", "1")
    terminal.answer("Paste another public key")
    terminal.answer("(LLM_DOCKER_SSH_HOST_PORT;", "9000")
    terminal.answer("(BUILDER_API_PASSWORD;", PASSWORD)
    terminal.answer("(BUILDER_API_AUTOSTART)", "n")
    terminal.answer("(INTERNET_ACCESS)")
    terminal.answer("(LAN_ACCESS)", "n")
    terminal.answer("(EGRESS_ALLOW;", "@npm github.com")
    terminal.answer("(HOST_PORTS;", "5432")
    terminal.answer("tmux helpers — from:")  # the default: vanilla, team
    terminal.answer("Devpacks — from:", "cpp media")
    terminal.answer("Write ")
    wait_until(lambda: "INIT-EXIT=" in terminal.screen(), PROMPT_SECONDS)
    screen = terminal.screen()
    assert "INIT-EXIT=0" in screen, screen
    assert "ANTHROPIC_BASE_URL: expected an http(s) URL" in screen
    assert ANTHROPIC not in screen and PASSWORD not in screen  # secrets are typed hidden, shown masked
    assert "ANTHROPIC_API_KEY=****0001" in screen

    for name in ("llm-docker.conf", ".env"):
        assert (asked / name).read_text() == (scripted / name).read_text(), name
        assert stat.S_IMODE((asked / name).stat().st_mode) == 0o600


def test_rerunning_the_wizard_shows_the_current_values_and_enter_keeps_them(user_home: Path,
                                                                          terminals: list[Terminal]) -> None:
    base, scripted = setting_up(user_home)
    before = {name: (scripted / name).read_text() for name in ("llm-docker.conf", ".env")}
    terminal = Terminal([*INIT, "--no-build"], {**base, "LLM_DOCKER_HOME": str(scripted)})
    terminals.append(terminal)
    for prompt in ("(WORKSPACE_DIR;", "(ANTHROPIC_API_KEY;", "(ANTHROPIC_BASE_URL;", "(OPENAI_API_KEY;",
                   "(OPENAI_BASE_URL;", "(ZAI_API_KEY;", "(LLM_DOCKER_SSH_ENABLED)", "Trust which?",
                   "Paste another public key", "(LLM_DOCKER_SSH_HOST_PORT;", "(BUILDER_API_PASSWORD;",
                   "(BUILDER_API_AUTOSTART)", "(INTERNET_ACCESS)", "(LAN_ACCESS)", "(EGRESS_ALLOW;", "(HOST_PORTS;",
                   "tmux helpers — from:", "Devpacks — from:", "Write "):
        terminal.answer(prompt)  # Enter: keep
    wait_until(lambda: "INIT-EXIT=" in terminal.screen(), PROMPT_SECONDS)
    screen = terminal.screen()
    assert "INIT-EXIT=0" in screen, screen
    for shown in (f"(WORKSPACE_DIR; - = none) ({user_home}/Projects/ai)", "(ANTHROPIC_API_KEY; Enter keeps ****0001",
                  "(BUILDER_API_PASSWORD; Enter keeps ****0001", "(HOST_PORTS; - = none) (5432)",
                  "(LAN_ACCESS) [y/n] (n)", "(laptop.pub)", "Trust which? (numbers like 1,2; none) (1)",
                  "Devpacks — from: security, ruby, cpp, llvm_clang, ns, media, quake, browsing; or none (cpp, media)",
                  "nothing changes"):
        assert shown in screen, shown
    assert ANTHROPIC not in screen and PASSWORD not in screen
    assert {name: (scripted / name).read_text() for name in before} == before
