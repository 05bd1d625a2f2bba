"""The one error the adapter raises: every refusal of the engine becomes an `EngineError`.

aiodocker raises `DockerError` (an HTTP status and the engine's message) and lets some of
aiohttp's own errors through (a connection reset in the middle of a stream). Callers above
the adapter must never need to name either library, so both are translated here, once, at
the boundary: `str(error)` is the engine's own message and `status` its HTTP status
(404 "no such ...", 409 "conflict", 304 "not modified"; 0 when the engine answered 200 but
reported the failure inside a stream, or when the connection broke).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiodocker
import aiohttp

from launch import errors


class EngineError(errors.EngineError):
    """The engine is unreachable or refused a request; `str()` is its message, `status` the
    HTTP status (0 when there is none), so callers can tell "gone" (404) from "busy" (409)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def engine_message(error: aiodocker.DockerError) -> str:
    """The engine's own words (aiodocker's `str()` prefixes the status), never empty."""
    message = error.message if isinstance(error.message, str) else str(error.message)
    return message.strip() or f"HTTP {error.status}"


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Run a request to the engine: aiodocker's and aiohttp's errors leave as `EngineError`.

    A timeout (`TimeoutError`) and a cancellation pass through unchanged: they are the
    caller's own deadlines, not the engine's answer."""
    try:
        yield
    except aiodocker.DockerError as error:
        raise EngineError(engine_message(error), status=error.status) from error
    except TimeoutError:
        raise  # aiohttp's ServerTimeoutError is a ClientError too: still a timeout
    except aiohttp.ClientError as error:
        raise EngineError(str(error).strip() or type(error).__name__) from error
