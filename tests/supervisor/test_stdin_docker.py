"""A launcher exits when its container is gone, whatever its stdin is (`producer | cld`).

A pipe whose writer never closes it (CI harnesses, `(sleep 600) | cld -- -p hi`) used to
keep the launcher alive forever: a worker thread sat in read(0) and the interpreter joins
its threads before it exits. Real engine, the launcher as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.processes import field, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

#: A liveness bound, not a benchmark: the launcher must not hang on its stdin.
EXIT_BOUND_SECONDS = 5.0


@contextlib.contextmanager
def stdin_of_kind(kind: str, folder: Path) -> Iterator[dict[str, object]]:
    """Popen keyword arguments giving the launcher that stdin; the writing side (if any)
    stays open until the test is over."""
    keep: list[int] = []
    try:
        if kind == "pipe":
            read_end, write_end = os.pipe()
            keep += [read_end, write_end]
            yield {"stdin": read_end}
        elif kind == "fifo":
            fifo = folder / "input.fifo"
            os.mkfifo(fifo)
            read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            keep += [read_end, os.open(fifo, os.O_WRONLY)]
            os.set_blocking(read_end, True)
            yield {"stdin": read_end}
        elif kind == "socket":
            ours, theirs = socket.socketpair()
            keep += [ours.detach(), theirs.detach()]
            yield {"stdin": keep[0]}
        elif kind == "file":
            path = folder / "input.txt"
            path.write_text("from a file\n")
            keep.append(os.open(path, os.O_RDONLY))
            yield {"stdin": keep[0]}
        elif kind == "devnull":
            yield {"stdin": subprocess.DEVNULL}
        else:  # closed
            yield {"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)}
    finally:
        for fd in keep:
            os.close(fd)


@pytest.mark.parametrize("kind", ["pipe", "fifo", "socket", "file", "devnull", "closed"])
def test_launcher_exits_once_its_container_is_gone(user: User, tmp_path: Path, kind: str) -> None:
    project = user.project()
    with stdin_of_kind(kind, tmp_path) as stdin:
        process = user.popen("cld", "--", "-p", "hi", "--fake-sleep", "2", "--fake-exit", "3", cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, **stdin)
        try:
            wait_until(lambda: len(project_containers(project)) == 1, timeout=60)
            wait_until(lambda: project_containers(project) == [], timeout=60)
            gone = time.monotonic()
            code = process.wait(timeout=60)
            exited_after = time.monotonic() - gone
            stdout, stderr = process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert exited_after < EXIT_BOUND_SECONDS, f"{kind}: exited {exited_after:.1f}s after its container was gone"
    assert code == 3, stderr
    assert field(stdout.decode(), "ANSWER"), stdout


def test_input_from_a_file_and_a_pipe_still_reaches_the_agent(user: User, tmp_path: Path) -> None:
    project = user.project()
    path = tmp_path / "lines.txt"
    path.write_text("first\nsecond\n")
    with path.open("rb") as handle:
        result = subprocess.run(user.command("cld"), cwd=project, env=user.env(), stdin=handle,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "ECHO") == ["first", "second"]
    piped = user.run("cld", cwd=project, stdin=b"one\ntwo\nexit\nnever\n")
    assert field(piped.stdout, "ECHO") == ["one", "two"] and piped.returncode == 0
