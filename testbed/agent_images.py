"""The real agent images for the end-to-end tests, and a stub model API to drive them.

The images are built once per test session through the product's own command
(`llm-docker image build --tool both`), with the test configuration below. On a fresh
machine that is the full offline build (debootstrap base, Debian packages, the agents
from the npm registry); afterwards the layer cache makes it a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.isolation import TEST_IMAGE_PREFIX
from testbed.processes import run
from testbed.stub_model import RUN_BASH_PREFIX, TOOL_DONE
from testbed.unprivileged import User

#: INSTALL_BROWSING (Chromium, ~400 MB) is off to keep CI's build short; every other
#: setting is the default, so these are the images a user gets — under the tests' own names
#: (`llm-docker-test-claude:latest`, ...: `testbed.isolation`), never the user's.
#: BASE_IMAGE=local: the tests never ask a registry for a base (their traffic stays on this machine).
TEST_IMAGE_CONFIG = f"INSTALL_BROWSING=false\nLLM_DOCKER_IMAGE_PREFIX={TEST_IMAGE_PREFIX}\nBASE_IMAGE=local\n"
BUILD_TIMEOUT = 1800


def write_test_config(home: Path, extra: str = "") -> Path:
    state = home / ".llm-docker"
    state.mkdir(parents=True, exist_ok=True)
    (state / "llm-docker.conf").write_text(TEST_IMAGE_CONFIG + extra)
    return state


def build_agent_images(home: Path) -> subprocess.CompletedProcess[str]:
    write_test_config(home)
    return run("llm-docker", "image", "build", "--tool", "both", cwd=home, home=home, timeout=BUILD_TIMEOUT)


def build_gateway_image(home: Path) -> subprocess.CompletedProcess[str]:
    """The tests' gateway image (`llm-docker-test-gateway:latest`), through the product's own
    command (`llm-docker image build --tool gateway`) with a throw-away state folder."""
    write_test_config(home)
    return run("llm-docker", "image", "build", "--tool", "gateway", cwd=home, home=home, timeout=BUILD_TIMEOUT)


def require_agent_images(home: Path) -> None:
    """Build (or, with the layer cache, confirm) the agent images, failing the test session
    loudly when that is impossible — these tests never skip."""
    result = build_agent_images(home)
    if result.returncode != 0:
        pytest.fail(f"building the agent images failed:\n{result.stderr[-4000:]}", pytrace=False)


#: A key for the stub model; it reaches the agent the product's way (llm-docker.conf →
#: the 0600 secrets file → the entrypoint's environment).
STUB_API_KEY = "sk-stub-key"


def cage_url(url: str) -> str:
    """The stub's URL as seen from the cage: the host is `host.docker.internal`, reachable
    only on the ports the network policy grants (`HOST_PORTS`, see `model_access`)."""
    return url.replace("127.0.0.1", "host.docker.internal")


def model_access(url: str) -> dict[str, str]:
    """Settings (as environment variables) that let the cage reach the stub model on the
    host: its port granted, the agent pointed at it."""
    return {"HOST_PORTS": url.rsplit(":", 1)[1], "ANTHROPIC_BASE_URL": cage_url(url)}


def configure_agent_user(user: User, url: str, extra: str = "") -> Path:
    """Make `user`'s llm-docker run the real agent images against the stub model at `url`:
    the test image settings plus the provider settings (the stub's host port granted by the
    network policy), in the user's own 0600 config (the launcher runs as that user and must
    be able to read it, nobody else)."""
    access = model_access(url)
    text = (TEST_IMAGE_CONFIG + f"ANTHROPIC_BASE_URL={access['ANTHROPIC_BASE_URL']}\n"
            f"HOST_PORTS={access['HOST_PORTS']}\nANTHROPIC_API_KEY={STUB_API_KEY}\n"
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n" + extra)
    config = user.write(user.state_home / "llm-docker.conf", text, mode=0o600)
    user.state_home.chmod(0o700)
    return config


def bash_prompt(command: str) -> str:
    """The prompt that makes the stub model call Claude Code's Bash tool with `command`
    (what a prompt-injected model does); the command must be one line."""
    assert "\n" not in command, "the stub reads one RUN-BASH line"
    return RUN_BASH_PREFIX + command


def bash_output(answer: str) -> str:
    """What the Bash tool printed, from the agent's final answer (`-p` output)."""
    assert answer.startswith(TOOL_DONE), f"the agent did not run the Bash tool: {answer!r}"
    return answer[len(TOOL_DONE):].lstrip("\n")


@contextmanager
def stub_model(log: Path) -> Iterator[str]:
    """Serve `testbed.stub_model` on loopback; yields its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "testbed.stub_model", "--host", "127.0.0.1", "--port", "0",
                                "--log", str(log)], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).parent.parent)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("LISTENING "), f"stub model did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        process.wait(timeout=10)
