"""`supervisor.output_tail`: the end of a hostile agent's output, bounded and plain."""

from __future__ import annotations

from hypothesis import given, strategies as st

from supervisor.output_tail import TAIL_CHARS, TAIL_LINES, OutputTail


def tail_of(*chunks: bytes, limit: int = 16 * 1024) -> list[str]:
    tail = OutputTail(limit=limit)
    for chunk in chunks:
        tail.feed(chunk)
    return tail.lines()


def test_the_last_lines_in_order_across_chunks() -> None:
    assert tail_of(b"first\r\nsec", b"ond\r\n\r\n", b"Error: boom\n") == ["first", "second", "Error: boom"]
    assert tail_of(*(f"line {n}\n".encode() for n in range(100))) == [f"line {n}" for n in range(80, 100)]


def test_terminal_controls_are_decoded_away() -> None:
    assert tail_of(b"\x1b[2J\x1b[H\x1b[?25l\x1b[1;31mError:\x1b[0m bad key\r\n") == ["Error: bad key"]
    assert tail_of(b"\x1b]0;title\x07text \x1b]8;;https://x.invalid\x1b\\link\x1b]8;;\x1b\\\n") == ["text link"]
    assert tail_of(b"progress 10%\rprogress 100%\r\n") == ["progress 100%"]  # as a terminal shows it


def test_nothing_left_can_drive_a_terminal() -> None:
    shown = tail_of("a\x08b\x07c\u202eevil\x9b31m\x00\tz\n".encode())
    assert shown == ["abcevil31m z"]


def test_bounded_in_bytes_and_characters() -> None:
    tail = OutputTail(limit=64)
    tail.feed(b"x" * 10_000 + b"\nlast words\n")
    assert tail.lines() == ["last words"]  # the cut, partial line is dropped
    assert len(tail._buffer) <= 64
    assert tail_of(b"y" * 10_000 + b"\n") == ["y" * TAIL_CHARS]  # one huge line: its end
    long_lines = tail_of(*(b"z" * 1000 + b"\n" for _ in range(10)))
    assert sum(map(len, long_lines)) <= TAIL_CHARS and len(long_lines) == 4


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert tail_of(b"caf\xc3\xa9 \xff\xfe ok\n") == ["caf\u00e9 \ufffd\ufffd ok"]


@given(st.lists(st.binary(max_size=300), max_size=30))
def test_any_output_gives_bounded_printable_lines(chunks: list[bytes]) -> None:
    shown = tail_of(*chunks, limit=2048)
    assert len(shown) <= TAIL_LINES and sum(map(len, shown)) <= TAIL_CHARS
    assert all(line and line.isprintable() for line in shown)
