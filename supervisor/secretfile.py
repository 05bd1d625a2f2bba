"""Write a container's secrets file into its run folder, before the container exists.

The folder is `$LLM_DOCKER_HOME/runs/<container name>` (0700), mounted at /run/llm-docker;
the file is created 0600 by the supervisor, which runs as the invoking user — the same
uid the agent runs as, so the agent's entrypoint can read it and nobody else on the host
can. It goes away with the run folder when the slot is saved (`supervisor.slots`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from launch.secrets import SECRETS_FILE, render
from supervisor.atomic import replace_atomically

FILE_MODE = 0o600


def write_secrets_file(folder: Path, secrets: Mapping[str, str]) -> Path | None:
    """Create `folder/secrets.env` atomically with mode 0600; None when there are none.

    `supervisor.atomic` opens the temporary name with O_EXCL|O_NOFOLLOW, so a planted
    symlink in the run folder can never redirect the secrets elsewhere."""
    if not secrets:
        return None
    path = folder / SECRETS_FILE
    replace_atomically(path, render(secrets).encode(), FILE_MODE)
    return path
