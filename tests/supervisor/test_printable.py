"""Notices quote agent-chosen text: what reaches the terminal cannot drive it."""

from __future__ import annotations

from supervisor.printable import printable


def test_controls_and_bidirectional_overrides_are_shown_not_obeyed() -> None:
    assert printable("slot 1 saved: \x1b]52;c;cm0gLXJmIH4K\x07") == "slot 1 saved: ?]52;c;cm0gLXJmIH4K?"
    assert printable("moved src/\u202eexe.txt\r\x1b[2K") == "moved src/?exe.txt??[2K"
    assert printable("plain — text, ünïcode ✓") == "plain — text, ünïcode ✓"
    assert printable("its last output:\n    error: no key\n") == "its last output:\n    error: no key\n"
