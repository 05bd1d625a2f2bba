"""structlog configuration: JSON lines for the log file, readable lines in development.

Log calls never touch the file themselves: the final processor hands each rendered JSON
line to a bounded in-memory stream that the `logs` task drains (dropping, and counting,
lines if the file cannot keep up), so logging never blocks the event loop.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from anyio.streams.memory import MemoryObjectSendStream

LOG_BUFFER_LINES = 4096


class LineSink:
    """The last processor: render JSON, queue it for the file, echo in development."""

    def __init__(self, send: MemoryObjectSendStream[str] | None, *, console: bool) -> None:
        self._send = send
        self._json = structlog.processors.JSONRenderer(sort_keys=False)
        self._console = structlog.dev.ConsoleRenderer(colors=False) if console else None
        self.dropped = 0

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        rendered = self._json(logger, method, dict(event))
        line = rendered if isinstance(rendered, str) else rendered.decode()
        if self._send is not None:
            try:
                self._send.send_nowait(line)
            except Exception:  # noqa: BLE001 - a full or closed buffer must not break logging
                self.dropped += 1
        if self._console is not None:
            try:
                sys.stderr.write(str(self._console(logger, method, dict(event))).replace("\n", "\r\n") + "\r\n")
            except (OSError, ValueError):
                pass  # the terminal is gone
        return line


def configure_logging(send: MemoryObjectSendStream[str] | None, *, development: bool,
                      **context: Any) -> structlog.typing.FilteringBoundLogger:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            LineSink(send, console=development),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind(**context)
    return logger
