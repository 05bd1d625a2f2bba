"""The first launch of a project works for the real Claude Code and OpenCode, interactively,
with only a key and a model endpoint configured — and no vendor host reachable.

A fresh project state used to stop Claude Code at its onboarding ("Unable to connect to
Anthropic services": it checks api.anthropic.com first), then at "use this API key?" (default
No), the folder's trust dialog and the bypass-mode disclaimer; OpenCode read Claude's
ANTHROPIC_BASE_URL without the `/v1` its SDK wants ("Not Found"). The image now answers
all of them (`entrypoint.d/10-first-run`, the managed settings, the OpenCode plugin
`llm-docker-providers.js`).

Each test runs the launcher as the unprivileged test user, in a real tmux server of that user
(its own `-L` socket), types a prompt with send-keys and reads the screen with capture-pane.
The cage's network policy closes the internet (INTERNET_ACCESS=false) and grants only the
stub model's port. The controls show that the same launch gets no answer where the seeding
does not apply (a user's own `.claude.json`) or a user's own provider setting points elsewhere
(it wins over the variable).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from launch.identity import project_state_home
from testbed.agent_images import TEST_IMAGE_CONFIG, cage_url, model_access
from testbed.processes import ENTRY, running, wait_until
from testbed.stub_model import ANSWER_PREFIX
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.image]

#: A cold engine and a first Claude Code start take a while; every wait is bounded by this.
AGENT_TIMEOUT = 300
#: Longer than 20 characters, so the approved suffix Claude Code checks is a real suffix.
API_KEY = "sk-ant-api03-first-run-" + "0123456789abcdef" * 3
#: What Claude Code's input box shows once it is ready for a prompt (the bypass mode's footer).
CLAUDE_READY = "bypass permissions on"
#: OpenCode's empty prompt.
OPENCODE_READY = "Ask anything"


# `agent_images` (the real images, built once) and `model` (the stub model's URL): tests/conftest.py


class Terminal:
    """A tmux server of the test user (its own `-L` socket, its own TMUX_TMPDIR), one pane
    running the launcher as that user — what a user's terminal is."""

    def __init__(self, user: User, name: str) -> None:
        self.user, self.socket = user, f"first-run-{name}"
        self.pid: int | None = None

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.user.prefix(), "tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=30, env=self.user.env(TMUX_TMPDIR=str(self.user.home)))

    def start(self, program: str, cwd: Path) -> None:
        command = shlex.join([str(self.user.python), "-c", ENTRY[program]])
        # the pane stays when the launcher exits, so a failure shows what it printed
        started = self.tmux("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
                            "new-session", "-d", "-x", "160", "-y", "50", "-c", str(cwd), command)
        assert started.returncode == 0, started.stderr
        self.pid = int(self.tmux("display-message", "-p", "#{pane_pid}").stdout)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J").stdout

    def wait_for(self, seen: Callable[[str], bool], what: str, timeout: float = AGENT_TIMEOUT) -> str:
        """The screen once `seen(screen)` holds; fails after `timeout` showing the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if seen(screen):
                return screen
            if time.monotonic() > deadline:
                pane = self.tmux("list-panes", "-F", "pid #{pane_pid}, dead #{pane_dead} #{pane_dead_status}")
                state = (pane.stdout + pane.stderr).strip()
                pytest.fail(f"{what}: not on the screen within {timeout}s ({state}); the pane shows:\n{screen}",
                            pytrace=False)
            time.sleep(0.5)

    def wait_for_text(self, text: str, timeout: float = AGENT_TIMEOUT) -> str:
        return self.wait_for(lambda screen: text in screen, repr(text), timeout)

    def type(self, line: str) -> None:
        """Type `line`, and Enter once the TUI shows it (typed together, a TUI may take the
        Enter as a newline inside the prompt)."""
        assert self.tmux("send-keys", "-l", line).returncode == 0
        self.wait_for_text(line[-16:], timeout=60)
        assert self.tmux("send-keys", "Enter").returncode == 0

    def close(self) -> None:
        """Close the terminal (the launcher gets SIGHUP and stops its slot), and wait for it."""
        self.tmux("kill-server")
        if self.pid is not None:
            pid = self.pid
            wait_until(lambda: not running(pid), timeout=120)


@pytest.fixture
def terminals(user: User) -> Iterator[Callable[[str], Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(name: str) -> Terminal:
        opened.append(Terminal(user, name))
        return opened[-1]

    yield open_terminal
    for terminal in opened:
        terminal.close()


def configure(user: User, url: str) -> None:
    """Only what a user sets: the key and the endpoint (plus the tests' images, the stub's
    port granted, the internet closed). No onboarding answers, no OpenCode config."""
    access = model_access(url)
    user.write(user.state_home / "llm-docker.conf",
               TEST_IMAGE_CONFIG + f"ANTHROPIC_API_KEY={API_KEY}\nANTHROPIC_BASE_URL={access['ANTHROPIC_BASE_URL']}\n"
               f"HOST_PORTS={access['HOST_PORTS']}\nINTERNET_ACCESS=false\n", mode=0o600)
    user.state_home.chmod(0o700)


def repository(user: User, name: str) -> Path:
    project = user.project(name)
    user.shell("git init -q -b main && echo hello > README.md && git add -A && git commit -q -m initial",
               cwd=project, check=True)
    return project


def asked(log: Path) -> list[dict[str, object]]:
    """The stub model's requests so far."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


# -- Claude Code ---------------------------------------------------------------------------

def test_claude_answers_on_the_first_interactive_launch(user: User, agent_images: None, model: str,
                                                        terminals: Callable[[str], Terminal], tmp_path: Path) -> None:
    configure(user, model)
    project = repository(user, "app")
    terminal = terminals("claude")
    terminal.start("cld", project)
    screen = terminal.wait_for_text(CLAUDE_READY)
    assert "Unable to connect" not in screen and "API key" not in screen, screen

    terminal.type("hello from a first launch")
    terminal.wait_for_text(f"{ANSWER_PREFIX}hello from a first launch")
    # the vendor is out of reach from this very session: the model makes Claude Code run curl
    terminal.type("RUN-BASH: curl -sS -m 10 -o /dev/null https://api.anthropic.com/ "
                  "&& echo VENDOR-REACHED-$((6*7)) || echo VENDOR-UNREACHABLE-$((6*7))")
    screen = terminal.wait_for(lambda s: "VENDOR-UNREACHABLE-42" in s or "VENDOR-REACHED-42" in s, "curl's verdict")
    assert "VENDOR-UNREACHABLE-42" in screen, screen
    assert "hello from a first launch" in [r.get("user") for r in asked(tmp_path / "stub-model.jsonl")]

    state = json.loads((project_state_home(user.state_home, project.resolve()) / "claude/.claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True
    assert state["customApiKeyResponses"]["approved"] == [API_KEY[-20:]]


def test_control_claude_stops_at_its_onboarding_when_a_users_file_is_kept(
        user: User, agent_images: None, model: str, terminals: Callable[[str], Terminal], tmp_path: Path) -> None:
    """The same launch, but the project's `.claude.json` already holds the user's own data: it
    is left as it is — and Claude Code, not told onboarding is done, stops at its connection
    check. (What every first launch did before the seeding.)"""
    configure(user, model)
    project = repository(user, "kept")
    user.write(project_state_home(user.state_home, project.resolve()) / "claude/.claude.json",
               '{"numStartups": 1}\n', mode=0o600)
    terminal = terminals("claude-control")
    terminal.start("cld", project)
    terminal.wait_for_text("Unable to connect to Anthropic services")
    assert not [r for r in asked(tmp_path / "stub-model.jsonl") if r.get("path") == "/v1/messages"]


# -- OpenCode ------------------------------------------------------------------------------

def test_opencode_answers_on_the_first_interactive_launch(user: User, agent_images: None, model: str,
                                                          terminals: Callable[[str], Terminal],
                                                          tmp_path: Path) -> None:
    configure(user, model)
    project = repository(user, "app")
    terminal = terminals("opencode")
    terminal.start("ocd", project)
    terminal.wait_for_text(OPENCODE_READY)
    terminal.type("hello from a first launch")
    terminal.wait_for_text(f"{ANSWER_PREFIX}hello from a first launch")
    paths = {r.get("path") for r in asked(tmp_path / "stub-model.jsonl")}
    assert "/v1/messages" in paths and "/messages" not in paths, paths


def test_control_a_users_own_opencode_provider_setting_wins(user: User, agent_images: None, model: str,
                                                            terminals: Callable[[str], Terminal],
                                                            tmp_path: Path) -> None:
    """The user's shared OpenCode config names its own Anthropic baseURL: OpenCode uses it, not
    the one derived from ANTHROPIC_BASE_URL — here a path the stub does not serve, so no answer
    comes (which also shows the derived baseURL is what made the test above answer)."""
    configure(user, model)
    own = f"{cage_url(model)}/the-users-own/v1"
    user.write(user.state_home / "shared/opencode/opencode.json",
               json.dumps({"provider": {"anthropic": {"options": {"baseURL": own}}}}))
    project = repository(user, "own")
    terminal = terminals("opencode-control")
    terminal.start("ocd", project)
    terminal.wait_for_text(OPENCODE_READY)
    terminal.type("hello from a first launch")
    log = tmp_path / "stub-model.jsonl"
    wait_until(lambda: any(r.get("path") == "/the-users-own/v1/messages" for r in asked(log)), timeout=AGENT_TIMEOUT)
    assert not [r for r in asked(log) if r.get("path") == "/v1/messages"]
    assert ANSWER_PREFIX not in terminal.screen()
