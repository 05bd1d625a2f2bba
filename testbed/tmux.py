"""A tmux server of the test's own, never the user's: its socket under a private, short
`TMUX_TMPDIR` (a unix socket's path is limited to ~100 bytes), and `$TMUX`/`$TMUX_PANE` of
the test's environment dropped, so no command here can reach the user's server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path


class TmuxServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="llmd-tmux-"))
        self.env = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE")}
        self.env.update(TMUX_TMPDIR=str(self.folder), TERM="xterm")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`tmux ARGS` on this server, whatever its outcome."""
        return subprocess.run(["tmux", *args], env=self.env, capture_output=True, text=True, timeout=30)

    def __call__(self, *args: str) -> str:
        """`tmux ARGS`, which must succeed; its output."""
        result = self.run(*args)
        assert result.returncode == 0, f"tmux {' '.join(args)}: {result.stderr}"
        return result.stdout

    def command(self, argv: Sequence[str]) -> str:
        """A whole command line the product built (`["tmux", ...]`), run on this server."""
        assert argv[0] == "tmux", argv
        return self(*argv[1:])

    def running(self) -> bool:
        return self.run("list-sessions").returncode == 0

    def sessions(self) -> list[str]:
        result = self.run("list-sessions", "-F", "#{session_name}")
        return result.stdout.split() if result.returncode == 0 else []

    def clients(self) -> dict[str, str]:
        """Each attached client's name (its tty) → the name of the session it shows."""
        result = self.run("list-clients", "-F", "#{client_name}\t#{client_session}")
        if result.returncode != 0:
            return {}
        return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)

    def close(self) -> None:
        self.run("kill-server")
        shutil.rmtree(self.folder, ignore_errors=True)
