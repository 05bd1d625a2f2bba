"""The tmux questions end to end, with the real engine and the real agent image (the tests'
own `llm-docker-test-claude`): the launcher on a pseudo-terminal or in a real tmux server,
the agent `claude --version` so that each launch ends by itself.

* Yes to "enable INSTALL_TMUX_VANILLA and rebuild the image?": the key is written, the image
  build runs (the layer cache makes it short when the test image is current), and the agent
  then runs inside the container's tmux (its status bar, then tmux's `[exited]`).
* `cld -t` in a pane of a real tmux server (so `$TMUX` is tmux's own): choice 1 runs the agent
  bare in that pane, choice 2 nests the container's tmux inside it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.agent_images import BUILD_TIMEOUT, TEST_IMAGE_CONFIG
from testbed.isolation import TEST_ENV
from testbed.processes import REPO, PtyProcess, project_containers, wait_until

#: Bound for a launch of `claude --version` (gateway, container, tmux) on a busy 2-core machine.
LAUNCH_SECONDS = 180
OFFER = "enable INSTALL_TMUX_VANILLA and rebuild the image? [y/N] "
VERSION = "(Claude Code)"


def test_yes_enables_tmux_rebuilds_the_image_and_runs_the_agent_in_tmux(
        agent_images: None, pty_processes: list[PtyProcess], user_home: Path, project: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    conf = state / "llm-docker.conf"
    conf.write_text(TEST_IMAGE_CONFIG + "INSTALL_TMUX_VANILLA=false\n")
    terminal = PtyProcess("cld", "-t", "--", "--version", cwd=project, home=user_home,
                          LLM_DOCKER_LAUNCH_SERVER="off")
    pty_processes.append(terminal)
    terminal.expect(OFFER, LAUNCH_SECONDS)
    terminal.type("y\n")
    terminal.expect("— rebuilding the image", LAUNCH_SECONDS)
    assert terminal.wait(BUILD_TIMEOUT + LAUNCH_SECONDS) == 0, terminal.text
    terminal.expect("[exited]", LAUNCH_SECONDS)  # the container's tmux ended with the agent
    assert conf.read_text() == TEST_IMAGE_CONFIG + "INSTALL_TMUX_VANILLA=true\n"
    build_log = (state / "logs" / "build.log").read_text()  # only a build writes it
    assert "llm-docker-test-claude:latest" in build_log
    screen = terminal.text
    assert '"llm-docker"' in screen  # tmux's status bar: the session's name
    assert VERSION in screen
    assert project_containers(project) == []


class TmuxServer:
    """One tmux server on a socket of this test's own; only it is ever killed."""

    def __init__(self) -> None:
        self.socket = f"llm-docker-test-nest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = {"PATH": os.environ["PATH"], "TERM": "xterm-256color", "HOME": os.environ.get("HOME", "/root")}
        self.socket_path: Path | None = None

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], env=self.env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, script: str) -> None:
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", "sh", "-c", script)
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200")

    def wait_for(self, text: str, timeout: float) -> str:
        try:
            wait_until(lambda: text in self.screen(), timeout)
        except AssertionError:
            pytest.fail(f"{text!r} never showed in the pane:\n{self.screen()}", pytrace=False)
        return self.screen()

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=30)
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def tmux_server() -> Iterator[TmuxServer]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing (scripts/test installs it)", pytrace=False)
    server = TmuxServer()
    yield server
    server.close()


@pytest.mark.parametrize("choice", ["1", "2"], ids=["bare", "nested"])
def test_t_inside_a_real_tmux_runs_bare_or_nests_as_chosen(
        agent_images: None, tmux_server: TmuxServer, user_home: Path, project: Path, choice: str) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text(TEST_IMAGE_CONFIG)
    environ = {"HOME": str(user_home), "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
               "TERM": "xterm-256color", "LLM_DOCKER_LAUNCH_SERVER": "off", **TEST_ENV}
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in environ.items())
    launcher = shlex.join([sys.executable, "-c", "from cli.launchers import cld_main; cld_main()",
                           "-t", "--", "--version"])
    # $TMUX and $TMUX_PANE are this pane's own, set by the tmux server
    tmux_server.start(f'cd {shlex.quote(str(project))} && env -i {assignments} TMUX="$TMUX" TMUX_PANE="$TMUX_PANE" '
                      f"{launcher}; echo LAUNCH-EXIT=$?; sleep 600")
    tmux_server.wait_for("[1/2, default 1]", LAUNCH_SECONDS)
    tmux_server.tmux("send-keys", "-l", "--", choice)
    tmux_server.tmux("send-keys", "Enter")
    screen = tmux_server.wait_for("LAUNCH-EXIT=", LAUNCH_SECONDS)
    assert "LAUNCH-EXIT=0" in screen, screen
    assert VERSION in screen or choice == "2", screen  # bare: the version printed in this very pane
    # nested: the container's own tmux ran the agent and ended with it; bare: no tmux in the container
    assert ("[exited]" in screen) == (choice == "2"), screen
    assert project_containers(project) == []
