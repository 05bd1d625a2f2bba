"""The launching terminal: raw mode, its size, and which terminal this is.

Backend-neutral (no asyncio, no trio): plain termios and ioctl, so it is tested on both.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Iterator, Mapping

NO_TTY = "notty"


def terminal_id(environ: Mapping[str, str], fd: int = 0) -> str:
    """A stable name for the terminal a launch runs in, used by `-c` without a slot.

    tmux pane, then iTerm session, then the tty device; without a terminal (scripts, CI)
    all launches share one id, so `-c` continues the project's last headless session.
    """
    if environ.get("TMUX_PANE"):
        return f"tmux:{environ['TMUX_PANE']}"
    if environ.get("ITERM_SESSION_ID"):
        return f"iterm:{environ['ITERM_SESSION_ID']}"
    try:
        return f"tty:{os.ttyname(fd)}"
    except OSError:
        return NO_TTY


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, or None."""
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, columns, _, _ = struct.unpack("HHHH", packed)
    return (rows, columns) if rows and columns else None


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the terminal in raw mode and restore it on every way out of the block."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
