"""Writing a host-side file whole or not at all, without following a planted symlink.

The supervisor's own records (tripwire records and quarantine manifests, the secrets file,
SSH keys, pins and probe status) are read by other processes — sshd, `llm-docker status`,
the next launch — that must never see half a file. Some of them sit in folders a container
mounts, so the temporary name is created with O_EXCL|O_NOFOLLOW: a link planted there can
never redirect the write.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: Path, content: bytes, mode: int) -> None:
    """Write `path` with `content` and `mode` (whatever the umask), atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
