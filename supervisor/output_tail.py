"""The last lines an agent printed, kept while its output is drained, to explain its death.

A supervised slot runs headless: when its agent exits with an error, the container — and
with it the agent's own message ("invalid API key", a stack trace) — is removed moments
later. `OutputTail` keeps the end of the attach stream, bounded (`TAIL_BYTES` of raw
output), and renders it as at most `TAIL_LINES` plain lines of at most `TAIL_CHARS`
characters in all.

The agent is hostile and its output goes to the user's terminal (the notice) and to the
log: terminal control sequences are decoded away by rich's ANSI decoder (a `\\r` keeps only
what was written after it, as on a terminal), and every character left that is not
printable — control characters, bidirectional overrides — is dropped.
"""

from __future__ import annotations

import re

from rich.text import Text

#: An OSC sequence ended by BEL (a window title): rich's decoder knows only the ST ending.
_OSC_BEL = re.compile(r"\x1b\]([^\x07\x1b]*)\x07")

#: Raw output kept: enough for TAIL_LINES of text between a TUI's escape sequences.
TAIL_BYTES = 16 * 1024
#: Lines shown once the agent died.
TAIL_LINES = 20
#: Characters shown in all (the last ones win).
TAIL_CHARS = 4 * 1024


class OutputTail:
    """The end of one output stream: `feed` every chunk, `lines()` once it is over."""

    def __init__(self, *, limit: int = TAIL_BYTES) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._cut = False

    def feed(self, data: bytes) -> None:
        """Append a chunk, forgetting what falls out of the bound (O(chunk + bound))."""
        self._buffer += data
        if len(self._buffer) > self._limit:
            del self._buffer[: len(self._buffer) - self._limit]
            self._cut = True

    def lines(self, *, count: int = TAIL_LINES, chars: int = TAIL_CHARS) -> list[str]:
        """The last `count` non-blank lines, plain and printable, `chars` characters at most."""
        raw = self._buffer.decode("utf-8", errors="replace").split("\n")
        if self._cut:
            raw = raw[1:]  # began mid-line (or mid-sequence)
        shown: list[str] = []
        total = 0
        for line in reversed(raw):
            plain = _plain(line)
            if not plain:
                continue
            if total + len(plain) > chars:
                if not shown:  # one huge line: its end
                    shown.append(plain[-chars:])
                break
            shown.append(plain)
            total += len(plain)
            if len(shown) == count:
                break
        return shown[::-1]


def _plain(line: str) -> str:
    """One terminal line as the text it shows, without anything that could drive a terminal."""
    visible = line.rstrip("\r").rsplit("\r", 1)[-1]
    text = Text.from_ansi(_OSC_BEL.sub("\x1b]\\1\x1b\\\\", visible)).plain
    return "".join(ch for ch in text if ch.isprintable() or ch == "\t").replace("\t", " ").rstrip()
