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

from tests.processes import run

#: INSTALL_BROWSING (Chromium, ~400 MB) is off to keep CI's build short; every other
#: setting is the default, so these are the images a user gets.
TEST_IMAGE_CONFIG = "INSTALL_BROWSING=false\n"
BUILD_TIMEOUT = 1800


def write_test_config(home: Path, extra: str = "") -> Path:
    state = home / ".llm-docker"
    state.mkdir(parents=True, exist_ok=True)
    (state / "llm-docker.conf").write_text(TEST_IMAGE_CONFIG + extra)
    return state


def build_agent_images(home: Path) -> subprocess.CompletedProcess[str]:
    write_test_config(home)
    return run("llm-docker", "image", "build", "--tool", "both", cwd=home, home=home, timeout=BUILD_TIMEOUT)


@contextmanager
def stub_model(log: Path) -> Iterator[str]:
    """Serve `tests.stub_model` on loopback; yields its base URL."""
    process = subprocess.Popen([sys.executable, "-m", "tests.stub_model", "--host", "127.0.0.1", "--port", "0",
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
