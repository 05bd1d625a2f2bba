"""Real Claude Code behind each network policy: it answers wherever the model endpoint is
allowed, and fails plainly where it is not (real image, stub model, launcher as the test user).

The stub model runs on the host's loopback; a cage reaches it only as
`host.docker.internal:PORT` with that port granted (`HOST_PORTS`), whatever the internet
and LAN settings say.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from testbed.agent_images import STUB_API_KEY, TEST_IMAGE_CONFIG, cage_url, configure_agent_user
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.image]


# `agent_images` (the real images, built once) and `model` (the stub model's URL): tests/conftest.py


@pytest.mark.parametrize("policy", ["", "INTERNET_ACCESS=false\n", "EGRESS_ALLOW=198.51.100.2\n",
                                    "LAN_ACCESS=false\nEGRESS_ALLOW=@npm\n"])
def test_claude_answers_where_the_model_is_allowed(user: User, agent_images: None, model: str, policy: str) -> None:
    configure_agent_user(user, model, policy)
    result = user.run("cld", "--", "-p", "ping", cwd=user.project("app"), timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "STUB-ANSWER: ping"


def test_claude_fails_plainly_where_the_model_is_not_allowed(user: User, agent_images: None, model: str) -> None:
    """The model's port is not granted: the host is closed to the cage. The launcher says so
    before the agent starts (the CLI itself would only retry), and the agent gets no answer."""
    user.write(user.state_home / "llm-docker.conf",
               TEST_IMAGE_CONFIG + f"ANTHROPIC_BASE_URL={cage_url(model)}\nANTHROPIC_API_KEY={STUB_API_KEY}\n"
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n", mode=0o600)
    port = model.rsplit(":", 1)[1]
    launcher = user.popen("cld", "--", "-p", "ping", cwd=user.project("app"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert launcher.stderr is not None
        warning = next(line for line in launcher.stderr if "warning:" in line or "Traceback" in line)
        assert f"add {port} to HOST_PORTS" in warning, warning
        time.sleep(10)  # the agent tries its model meanwhile
    finally:
        launcher.terminate()  # a graceful stop, as Ctrl-C would do
        stdout, _ = launcher.communicate(timeout=60)
    assert "STUB-ANSWER" not in stdout
