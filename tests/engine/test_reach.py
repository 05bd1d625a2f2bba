"""An engine that does not answer: one line (exit 125) naming the endpoint, where it came
from (DOCKER_HOST, a Docker context, the default socket) and advice that fits — never "start
the engine" for a mistyped DOCKER_HOST. Real `cld` processes whose endpoint is not this
machine's engine (a missing socket, a closed port, a context of a throw-away home)."""

from __future__ import annotations

import errno
import hashlib
import json
import socket
from pathlib import Path

import pytest

from engine.reach import Endpoint, no_endpoint_message, unreachable_message
from testbed.processes import run


def launch(home: Path, **env: str) -> tuple[int, str]:
    project = home / "app"
    project.mkdir(parents=True, exist_ok=True)
    result = run("cld", "--", "-p", "hello", cwd=project, home=home, timeout=60, **env)
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    return result.returncode, result.stderr.strip()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed, so no one else took it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_docker_host_socket_that_does_not_exist(tmp_path: Path) -> None:
    code, line = launch(tmp_path, DOCKER_HOST="unix:///nonexistent.sock")
    assert code == 125
    assert line == ("cld: cannot reach the Docker engine at unix:///nonexistent.sock, set by DOCKER_HOST (no such "
                    "socket) — check DOCKER_HOST=unix:///nonexistent.sock (unset it to use the default socket)")


def test_a_docker_host_port_nothing_listens_on(tmp_path: Path) -> None:
    port = closed_port()
    code, line = launch(tmp_path, DOCKER_HOST=f"tcp://127.0.0.1:{port}")
    assert code == 125
    assert line == (f"cld: cannot reach the Docker engine at tcp://127.0.0.1:{port}, set by DOCKER_HOST (connection "
                    f"refused) — check DOCKER_HOST=tcp://127.0.0.1:{port} (unset it to use the default socket)")
    assert "systemctl" not in line


def test_a_docker_host_without_a_scheme(tmp_path: Path) -> None:
    code, line = launch(tmp_path, DOCKER_HOST="localhost:2375")
    assert code == 125
    assert line.startswith("cld: cannot use DOCKER_HOST=localhost:2375 (")
    assert line.endswith("— check DOCKER_HOST: unix://PATH, tcp://HOST:PORT or ssh://USER@HOST (unset it to use the "
                         "default socket)")


def _context(home: Path, name: str, host: str) -> None:
    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}))


def test_a_docker_context_chosen_in_the_config_file(tmp_path: Path) -> None:
    _context(tmp_path, "remote", f"unix://{tmp_path}/gone.sock")
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    code, line = launch(tmp_path)
    assert code == 125
    assert line == (f"cld: cannot reach the Docker engine at unix://{tmp_path}/gone.sock, set by the Docker context "
                    "remote (chosen by ~/.docker/config.json) (no such socket) — check it with `docker context "
                    "inspect remote`, or run `docker context use default` to use the default socket")


def test_a_docker_context_that_does_not_exist(tmp_path: Path) -> None:
    code, line = launch(tmp_path, DOCKER_CONTEXT="nope")
    assert code == 125
    assert line == ("cld: the Docker context nope (chosen by DOCKER_CONTEXT) is broken (no such context) — check it "
                    "with `docker context inspect nope`, or unset DOCKER_CONTEXT to use the default socket")


@pytest.mark.parametrize(("failure", "advice"), [
    (FileNotFoundError(errno.ENOENT, "No such file or directory"),
     "(no such socket) — start the engine, e.g. `sudo systemctl start docker` (Docker Desktop: start the app)"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     "(connection refused) — start the engine, e.g. `sudo systemctl start docker`"),
    (PermissionError(errno.EACCES, "Permission denied"),
     "(permission denied) — you may not use /nonexistent/docker.sock: join the group docker that owns it "
     "(`sudo usermod -aG docker $USER`, then log in again)"),
])
def test_the_default_socket(failure: OSError, advice: str) -> None:
    """The default socket is this machine's engine, so a test cannot take it away: the line
    from the same failures aiohttp wraps (its connector error, aiodocker's on top)."""
    wrapped = RuntimeError("Cannot connect to Docker Engine via unix:///nonexistent/docker.sock")
    wrapped.__cause__ = failure
    line = unreachable_message(Endpoint("unix:///nonexistent/docker.sock", "default"),
                               "unix:///nonexistent/docker.sock", wrapped)
    assert line.startswith("cannot reach the Docker engine at unix:///nonexistent/docker.sock, the default socket "
                           + advice)


def test_no_endpoint_at_all_says_where_it_looked() -> None:
    line = no_endpoint_message(Endpoint(None, "default"))
    assert line.startswith("no Docker engine found (no DOCKER_HOST, no Docker context, no socket at /run/docker.sock, "
                           "/var/run/docker.sock, ")
    assert line.endswith("— install Docker and start it, e.g. `sudo systemctl start docker`")
