"""Docker Desktop down: a launch starts it, once across concurrent launches, or says in one
line that it did not come up. Desktop is a fake (`testbed.fake_desktop`): a fake
`systemctl` on PATH that starts a fake engine answering as Desktop does, reached through
the `desktop-linux` Docker context of a throw-away home — never the real engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.desktop import DESKTOP_SOCKETS, desktop_socket, start_command
from testbed import fake_desktop
from testbed.processes import run

REPO = Path(__file__).parents[2]
LAUNCH = """
import sys
from pathlib import Path
import anyio
from engine.desktop import connect_for_launch
from engine.errors import EngineError
from engine.kind import identify

async def main() -> int:
    def progress(message: str) -> None:
        print(f"cld: {message}", file=sys.stderr, flush=True)
    try:
        engine = await connect_for_launch(Path(sys.argv[1]), progress, timeout=float(sys.argv[2]))
    except EngineError as error:
        print(f"cld: {error}", file=sys.stderr)
        return error.exit_code
    async with engine:
        print((await identify(engine)).kind)
    return 0

sys.exit(anyio.run(main, backend="asyncio"))
"""


class Desktop:
    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        self.socket = fake_desktop.desktop_home(self.home)
        self.bin = root / "bin"
        self.log = root / "systemctl.log"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DOCKER_", "LLM_DOCKER_"))}
        return {**env, "HOME": str(self.home), "PATH": f"{self.bin}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}

    def launch(self, timeout: float) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", LAUNCH, str(self.home / ".llm-docker"), str(timeout)],
                                env=self.env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    rig = Desktop(tmp_path)
    try:
        yield rig
    finally:
        fake_desktop.stop_engine(rig.log)


def test_concurrent_launches_start_desktop_exactly_once(desktop: Desktop) -> None:
    fake_desktop.install_systemctl(desktop.bin, socket=desktop.socket, log=desktop.log, delay=2)
    launches = [desktop.launch(timeout=60) for _ in range(4)]
    results = [launch.communicate(timeout=120) for launch in launches]
    assert [launch.returncode for launch in launches] == [0] * 4, results
    assert [out.strip() for out, _ in results] == ["docker-desktop"] * 4
    assert fake_desktop.started(desktop.log) == ["--user start docker-desktop"]
    starters = [err for _, err in results if "Docker Desktop is not running — starting it" in err]
    assert len(starters) == 1, results
    lock = desktop.home / ".llm-docker" / "docker-desktop.lock"
    assert lock.is_file() and not lock.is_symlink() and lock.stat().st_mode & 0o777 == 0o600


def test_a_desktop_that_never_answers_is_one_line_and_exit_125(desktop: Desktop) -> None:
    fake_desktop.install_systemctl(desktop.bin, socket=desktop.socket, log=desktop.log, delay=0, starts=False)
    launch = desktop.launch(timeout=1.5)
    out, err = launch.communicate(timeout=60)
    assert launch.returncode == 125 and out == ""
    last = err.strip().splitlines()[-1]
    assert last == ("cld: Docker Desktop did not answer within 2 s (started with `systemctl --user start "
                    "docker-desktop`) — start Docker Desktop, then launch again"), err
    assert fake_desktop.started(desktop.log) == ["--user start docker-desktop"]


def test_a_failing_start_command_is_one_line(desktop: Desktop) -> None:
    desktop.bin.mkdir()
    (desktop.bin / "systemctl").write_text("#!/bin/sh\necho 'Unit docker-desktop.service not found.' >&2\nexit 5\n")
    (desktop.bin / "systemctl").chmod(0o755)
    launch = desktop.launch(timeout=30)
    _, err = launch.communicate(timeout=60)
    assert launch.returncode == 125
    assert err.strip().splitlines()[-1] == ("cld: could not start Docker Desktop: `systemctl --user start "
                                            "docker-desktop` failed (Unit docker-desktop.service not found.)")


def test_an_engine_that_is_not_desktop_is_never_started(desktop: Desktop, tmp_path: Path) -> None:
    """Another endpoint that does not answer: `connect`'s own error, and no `systemctl`."""
    fake_desktop.install_systemctl(desktop.bin, socket=desktop.socket, log=desktop.log, delay=0)
    env = {**desktop.env(), "DOCKER_CONTEXT": "default", "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    launch = subprocess.run([sys.executable, "-c", LAUNCH, str(desktop.home / ".llm-docker"), "30"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert launch.returncode == 125
    assert "cannot reach the Docker engine at unix://" in launch.stderr
    assert fake_desktop.started(desktop.log) == []


def test_cld_starts_desktop_through_the_launch_path(desktop: Desktop) -> None:
    """The real launcher: the hook where the supervisor connects starts Desktop, then the
    launch asks the (fake) engine who it is and for its image — which it does not have."""
    fake_desktop.install_systemctl(desktop.bin, socket=desktop.socket, log=desktop.log, delay=1)
    project = desktop.home / "Projects" / "app"
    project.mkdir(parents=True)
    result = run("cld", "--", "-p", "x", cwd=project, home=desktop.home, timeout=120,
                 PATH=f"{desktop.bin}:{os.environ['PATH']}", NETWORK_MODE="host",
                 LLM_DOCKER_IMAGE="llm-docker-test-absent:latest", LLM_DOCKER_SSH_ENABLED="false")
    assert result.returncode == 125, result.stderr
    assert fake_desktop.started(desktop.log) == ["--user start docker-desktop"]
    assert "cld: Docker Desktop is not running — starting it (systemctl --user start docker-desktop)" \
        in result.stderr
    assert "llm-docker-test-absent:latest" in result.stderr.strip().splitlines()[-1]
    asked = desktop.log.with_suffix(".requests").read_text().splitlines()
    assert any(path.endswith("/info") for path in asked)  # `identify` on the launch path


def test_desktop_socket(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mac, linux = (home / relative for relative in DESKTOP_SOCKETS)
    assert desktop_socket(None, home) is None  # no endpoint, no Desktop installed
    linux.parent.mkdir(parents=True)
    assert desktop_socket(None, home) == linux  # installed, stopped: its socket is gone
    assert desktop_socket(f"unix://{linux}", home) == linux
    assert desktop_socket(f"unix://{mac}", home) == mac
    system = tmp_path / "var-run-docker.sock"
    system.symlink_to(mac)  # macOS: /var/run/docker.sock -> ~/.docker/run/docker.sock
    assert desktop_socket(f"unix://{system}", home) == mac
    assert desktop_socket("unix:///var/run/docker.sock", home) is None
    assert desktop_socket("tcp://127.0.0.1:2375", home) is None
    assert desktop_socket("ssh://me@box", home) is None


def test_start_command() -> None:
    assert start_command("darwin") == ("open", "-a", "Docker")
    assert start_command("linux") == ("systemctl", "--user", "start", "docker-desktop")
    assert start_command("win32") is None
