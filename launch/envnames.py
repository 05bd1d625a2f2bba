"""Which environment variable names may ever cross into the container."""

from __future__ import annotations

import re

_NEVER_FORWARDED = re.compile(
    r"^(TMUX.*|PATH|HOME|USER|LOGNAME|SHELL|PWD|OLDPWD|SHLVL|HOSTNAME|TMPDIR|LD_.+|DYLD_.+|"
    r"DOCKER_HOST|SSH_AUTH_SOCK|LLM_DOCKER_.+)$"
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def forwardable(name: str) -> bool:
    """False for malformed names and for variables the container must own or never see
    (`TMUX*` breaks tmux inside, `PATH`/`HOME`/`LD_*` belong to the image, `SSH_AUTH_SOCK`
    and `DOCKER_HOST` would hand the agent the user's keys or the engine)."""
    return bool(_NAME.match(name)) and not _NEVER_FORWARDED.match(name)
