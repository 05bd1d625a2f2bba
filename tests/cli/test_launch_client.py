"""The launch server's client: when it hands a launch over, and when it keeps it."""

from __future__ import annotations

import os
import pty

from cli.launch_client import in_foreground


def test_a_terminal_that_is_not_ours_is_not_the_foreground() -> None:
    """stdin a terminal that is not this process's controlling one (or this process in its
    background): the launch runs in process, under the kernel's job control."""
    master, slave = pty.openpty()
    saved = os.dup(0)
    try:
        os.dup2(slave, 0)
        assert in_foreground() is False
        with open(os.devnull) as devnull:
            os.dup2(devnull.fileno(), 0)
            assert in_foreground() is True  # not a terminal: nothing to steal
    finally:
        os.dup2(saved, 0)
        for fd in (saved, master, slave):
            os.close(fd)
