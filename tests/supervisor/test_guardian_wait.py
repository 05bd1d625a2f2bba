"""The waiting guardian (a shell blocked in `read`): Python runs only when the supervisor
died before saying `done`, and no terminal signal ends the wait."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from supervisor.guardian import guardian_command
from testbed.processes import wait_until


def _waiting(marker: Path) -> list[str]:
    """The guardian's shell with the Python guardian replaced by a marker writer (same `exec "$@"`)."""
    command = guardian_command(Path("/nonexistent"), ["run"])
    python_at = command.index("llm-docker-guardian") + 1
    assert command[python_at:][1:4] == ["-P", "-m", "supervisor.guardian"]
    return [*command[:python_at], "/bin/sh", "-c", f"echo recovered > {marker}"]


@pytest.mark.parametrize(("said", "recovers"), [(b"done\n", False), (b"", True), (b"do", True), (b"nope\n", True)])
def test_python_starts_only_when_the_supervisor_did_not_say_done(tmp_path: Path, said: bytes, recovers: bool) -> None:
    marker = tmp_path / "marker"
    result = subprocess.run(_waiting(marker), input=said, timeout=30)
    assert result.returncode == 0
    assert marker.exists() == recovers


def test_terminal_signals_do_not_end_the_wait(tmp_path: Path) -> None:
    """A hang-up or Ctrl-C aimed at the launch must not take its lease along (the shell is
    in its own session too, as the supervisor starts it)."""
    marker = tmp_path / "marker"
    process = subprocess.Popen(_waiting(marker), stdin=subprocess.PIPE, start_new_session=True)
    assert process.stdin is not None
    try:
        # blocked in `read` (the trap is set before it)
        wait_until(lambda: "pipe" in Path(f"/proc/{process.pid}/wchan").read_text())
        for number in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            process.send_signal(number)
        process.stdin.close()  # the supervisor died: a shell the signals ended would not recover
        assert process.wait(timeout=30) == 0
        assert marker.exists()
    finally:
        if process.poll() is None:
            process.kill()
