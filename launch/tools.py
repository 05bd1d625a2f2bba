"""The agents llm-docker runs, and their launchers' names."""

from __future__ import annotations

import enum

from launch.errors import UsageError


class Tool(enum.Enum):
    """The agent a launcher runs; the value is the command inside the container."""

    CLAUDE = "claude"
    OPENCODE = "opencode"

    @property
    def launcher(self) -> str:
        return "cld" if self is Tool.CLAUDE else "ocd"

    @classmethod
    def from_name(cls, name: str) -> Tool:
        """Accept the tool name (`claude`) or its launcher's (`cld`)."""
        for tool in cls:
            if name in (tool.value, tool.launcher):
                return tool
        raise UsageError(f"unknown tool {name!r} (expected claude or opencode)")
