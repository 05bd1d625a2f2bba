"""Permission denied on this machine's engine socket: `cld` as an unprivileged uid that is
NOT in the socket's group says to join that group — not "start the engine", which runs."""

from __future__ import annotations

import grp
import subprocess
from collections.abc import Iterator

import pytest

from testbed.processes import ENTRY
from testbed.unprivileged import CAGE_GID, CAGE_UID, DOCKER_SOCKET, User


@pytest.fixture
def outsider() -> Iterator[User]:
    user = User()
    try:
        yield user
    finally:
        user.cleanup()


def test_a_user_outside_the_docker_group_is_told_to_join_it(outsider: User) -> None:
    assert DOCKER_SOCKET.is_socket(), "these tests need the Docker engine's socket"
    group = grp.getgrgid(DOCKER_SOCKET.stat().st_gid).gr_name
    project = outsider.project()
    without_group = ["setpriv", f"--reuid={CAGE_UID}", f"--regid={CAGE_GID}", "--clear-groups", "--"]
    result = subprocess.run([*without_group, str(outsider.python), "-c", ENTRY["cld"], "--", "-p", "hello"],
                            cwd=project, env=outsider.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 125, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("cld: cannot reach the Docker engine at unix://")
    assert ", the default socket (permission denied) — you may not use " in line
    assert line.endswith(f": join the group {group} that owns it (`sudo usermod -aG {group} $USER`, then log in "
                         "again)")
