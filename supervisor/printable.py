"""Text for the user's terminal that cannot drive it.

Notices quote what an agent chose: folder names the tripwire moved, session ids, an SSH
server's words. An escape sequence in one of them could rewrite the user's clipboard
(OSC 52), hide the very warning it is in, or retitle the window; every character that is
not printable (controls, bidirectional overrides) is shown as `?` instead. Line breaks stay:
a notice may quote lines (a dead agent's last output, already plain), and a line break moves
the cursor, never drives the terminal.
"""

from __future__ import annotations


def printable(text: str) -> str:
    return "".join(character if character.isprintable() or character == "\n" else "?" for character in text)
