"""A hijacked attach (or exec) connection: the container's output in, keystrokes out.

`AttachStream` wraps aiodocker's `Stream` so that its errors are `EngineError`s, and adds
the one thing aiodocker does not offer: closing only the writing half (`close_stdin`).
"""

from __future__ import annotations

from types import TracebackType

from aiodocker.stream import Message, Stream

from engine.errors import translated

__all__ = ["AttachStream", "Message"]

# `Message` is aiodocker's NamedTuple (`stream`: 1 stdout / 2 stderr, `data`: bytes),
# re-exported as it is: the proxy copies every chunk, a second tuple per chunk buys nothing.


class AttachStream:
    """Use as `async with`: the connection opens on entry and closes on exit."""

    def __init__(self, raw: Stream) -> None:
        self._raw = raw

    async def __aenter__(self) -> AttachStream:
        with translated():
            await self._raw.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        with translated():
            await self._raw.close()

    async def read_out(self) -> Message | None:
        """The next chunk of output (stream 1 or 2); None at the end of the stream."""
        with translated():
            return await self._raw.read_out()

    async def write_in(self, data: bytes) -> None:
        """Send `data` to the container's stdin (waits while the connection is full)."""
        with translated():
            await self._raw.write_in(data)

    def close_stdin(self) -> None:
        """Half-close the connection: the container's stdin sees EOF while its output keeps
        flowing, as the Docker CLI's `CloseWrite` does. aiodocker's `Stream.close()` closes
        both directions and has no public half-close, so this reaches for the response's
        transport (`Stream._resp`) — the only private aiodocker attribute the stream uses."""
        response = self._raw._resp
        transport = response.connection.transport if response and response.connection else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()
