"""Ctrl-C before the supervisor's own signal handling runs is still one line and 130."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from testbed.processes import PtyProcess


def test_ctrl_c_while_the_engine_is_being_reached_is_130_without_a_traceback(
        tmp_path: Path, home: Path, project: Path) -> None:
    """An engine that takes the connection and never answers (or an image build: the same
    stage) — the user presses Ctrl-C: no `KeyboardInterrupt` traceback, exit 130."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        listener.settimeout(60)
        process = PtyProcess("cld", "--", "-p", "x", cwd=project, home=home, DOCKER_HOST=f"unix://{path}")
        try:
            connection, _ = listener.accept()  # the launcher is waiting for the engine now
            os.kill(process.process.pid, signal.SIGINT)
            assert process.wait(timeout=30) == 130, process.text
            connection.close()
        finally:
            process.cleanup()
    assert "cld: interrupted" in process.text
    assert "Traceback" not in process.text and "KeyboardInterrupt" not in process.text
