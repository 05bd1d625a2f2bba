"""Which conversation a container's tool opens: fresh, continue the last one, or resume one.

The session model on its own (the container's `Cmd` that renders it is `launch.command`):
the slot store (`supervisor.slots`) reads and writes these choices without caring how the
tool is invoked.
"""

from __future__ import annotations

import dataclasses
import enum

from launch.argv import LaunchRequest
from launch.tools import Tool


class SessionKind(enum.Enum):
    FRESH = "fresh"
    CONTINUE = "continue"
    RESUME = "resume"


@dataclasses.dataclass(frozen=True)
class SessionChoice:
    """Which conversation the tool opens; `session_id` is set for RESUME (and for a fresh
    Claude session, whose UUID the host mints so the slot can record it up front)."""

    kind: SessionKind
    session_id: str | None = None


def session_from_request(request: LaunchRequest, new_session_id: str) -> SessionChoice:
    """The session a request asks for, before any slot lookup."""
    if request.resume_id is not None:
        return SessionChoice(SessionKind.RESUME, request.resume_id)
    if request.continue_session:
        return SessionChoice(SessionKind.CONTINUE)
    return SessionChoice(SessionKind.FRESH, new_session_id if request.tool is Tool.CLAUDE else None)
