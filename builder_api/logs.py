"""Log aliases: tail a file by alias, and read what was appended since last time.

Every read opens the file anew through `safefs` (no symlink followed, regular files only,
never blocking), so a log alias inside the project that the agent swaps for a symlink to a
host file, a FIFO or a device yields a refusal, never the host file's content.
"""

from __future__ import annotations

import os
from pathlib import Path

from builder_api.safefs import READ, FileRefused, open_file

BLOCK = 64 * 1024
#: A line longer than this is cut (with a marker): one frame never holds a whole huge file.
MAX_LINE_BYTES = 16 * 1024
#: At most this much is read per wake-up and file, so one busy log cannot starve the others.
MAX_READ_BYTES = 1 << 20
#: The most `tail` reads back from a file's end.
MAX_TAIL_BYTES = 4 << 20

__all__ = ["FileRefused", "LogCursor", "tail"]


def tail(path: Path, n: int, root: Path | None = None) -> str:
    """The last `n` lines (1..10000) of `path`; "" when it does not exist. `FileRefused`
    when it is a symlink, runs through one, or is not a regular file."""
    n = max(1, min(10_000, n))
    try:
        descriptor = open_file(path, root, READ)
    except FileNotFoundError:
        return ""
    try:
        position = os.fstat(descriptor).st_size
        blocks: list[bytes] = []
        newlines = read = 0
        # backwards, block by block, until n lines or MAX_TAIL_BYTES: the agent writes these
        # files (a sparse terabyte without a newline would otherwise be read whole)
        while position > 0 and newlines <= n and read < MAX_TAIL_BYTES:
            step = min(BLOCK, position)
            position -= step
            block = os.pread(descriptor, step, position)
            blocks.append(block)
            newlines += block.count(b"\n")
            read += len(block)
    finally:
        os.close(descriptor)
    data = b"".join(reversed(blocks))
    return "\n".join(_cut(line) for line in data.splitlines()[-n:])


def _cut(line: bytes) -> str:
    if len(line) <= MAX_LINE_BYTES:
        return line.decode(errors="replace")
    return line[:MAX_LINE_BYTES].decode(errors="replace") + f"…[{len(line) - MAX_LINE_BYTES} bytes cut]"


class LogCursor:
    """New complete lines of one file since the cursor was made; restarts from 0 when the
    file shrinks (rotation, truncation). A partial last line waits for its newline (up to
    `MAX_LINE_BYTES`, then it is cut and sent)."""

    def __init__(self, path: Path, root: Path | None) -> None:
        self.path, self.root = path, root
        self.offset = self._size()
        self._pending = b""

    def _size(self) -> int:
        try:
            descriptor = open_file(self.path, self.root, READ)
        except OSError:
            return 0
        try:
            return os.fstat(descriptor).st_size
        finally:
            os.close(descriptor)

    def read(self) -> tuple[list[str], bool]:
        """(new lines, whether more is waiting). A missing or refused file reads as nothing."""
        try:
            descriptor = open_file(self.path, self.root, READ)
        except OSError:
            return [], False
        try:
            size = os.fstat(descriptor).st_size
            if size < self.offset:
                self.offset, self._pending = 0, b""
            if size == self.offset:
                return [], False
            chunk = os.pread(descriptor, min(size - self.offset, MAX_READ_BYTES), self.offset)
        finally:
            os.close(descriptor)
        self.offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        if len(self._pending) > MAX_LINE_BYTES:
            lines.append(self._pending)
            self._pending = b""
        return [_cut(line) for line in lines], self.offset < size
