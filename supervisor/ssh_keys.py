"""The install's SSH keys, made once and reused: the effects behind `launch.ssh`.

* `$LLM_DOCKER_HOME/ssh/` (0700, mounted READ-ONLY at /etc/ssh/keys in every slot):
  `ssh_host_ed25519_key` (0600) + `.pub`, and `authorized_keys` (0600, rewritten at each
  launch from LLM_DOCKER_SSH_AUTHORIZED_KEYS plus the install's client key);
* `$LLM_DOCKER_HOME/ssh-client/` (0700, never mounted): the install's client key
  `id_ed25519` — the probe's, and what `llm-docker ssh` / `ssh-config` use — and
  `known_hosts`, the host key's pin, written ONCE when the host key is made. A host key
  that later differs from the pin (replaced on disk, or served by an impostor) is a
  mismatch to every client we start, never silently re-trusted.

Keys are made with asyncssh (already a dependency), so the host needs no ssh-keygen.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from launch import ssh as plan
from supervisor.atomic import replace_atomically

FOLDER_MODE = 0o700
FILE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclasses.dataclass(frozen=True)
class InstallKeys:
    """Where the install's SSH material is, and the pinned host key."""

    keys_folder: Path
    client_folder: Path
    #: The host key as pinned in `known_hosts` (`type base64`): what every probe expects.
    pinned_host_key: str

    @property
    def client_key(self) -> Path:
        return self.client_folder / plan.CLIENT_KEY_FILE

    @property
    def known_hosts(self) -> Path:
        return self.client_folder / plan.KNOWN_HOSTS_FILE


def keys_folder(state_home: Path) -> Path:
    return state_home / plan.KEYS_FOLDER


def client_folder(state_home: Path) -> Path:
    return state_home / plan.CLIENT_FOLDER


def status_folder(state_home: Path) -> Path:
    return state_home / plan.STATUS_FOLDER


def ensure_install_keys(state_home: Path, user_keys: tuple[str, ...]) -> InstallKeys:
    """Make what is missing (host key, client key, pin), then write `authorized_keys`.

    Idempotent and safe against a concurrent launch: every file is created atomically
    with O_EXCL, so two launches racing make one key, and both use it."""
    keys, client = keys_folder(state_home), client_folder(state_home)
    for folder in (state_home, keys, client):
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    host_key = keys / plan.HOST_KEY_FILE
    client_key = client / plan.CLIENT_KEY_FILE
    _ensure_key_pair(host_key, comment="llm-docker host key")
    _ensure_key_pair(client_key, comment="llm-docker install key")
    known_hosts = client / plan.KNOWN_HOSTS_FILE
    host_public = _public_text(host_key)
    _create_once(known_hosts, plan.known_hosts_line(host_public).encode(), FILE_MODE)
    pinned = _pinned_key(known_hosts.read_text(encoding="utf-8"))
    text = plan.authorized_keys_text(user_keys, _public_text(client_key))
    replace_atomically(keys / plan.AUTHORIZED_KEYS_FILE, text.encode(), FILE_MODE)
    return InstallKeys(keys_folder=keys, client_folder=client, pinned_host_key=pinned)


def _ensure_key_pair(private: Path, *, comment: str) -> None:
    if private.exists():
        return
    import asyncssh  # here, not at import: a launch without SSH never pays for it (~0.2 s)

    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    if _create_once(private, key.export_private_key("openssh"), FILE_MODE):
        replace_atomically(private.with_name(private.name + ".pub"), key.export_public_key("openssh"), PUBLIC_MODE)


def _public_text(private: Path) -> str:
    """`type base64` of a private key file (the `.pub` beside it may be missing or stale)."""
    import asyncssh

    key = asyncssh.read_private_key(str(private))
    return key.export_public_key("openssh").decode().strip()


def _pinned_key(known_hosts: str) -> str:
    for line in known_hosts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == plan.HOST_KEY_ALIAS:
            return f"{parts[1]} {parts[2]}"
    raise ValueError(f"no '{plan.HOST_KEY_ALIAS}' line in the SSH pin")


def _create_once(path: Path, content: bytes, mode: int) -> bool:
    """Create `path` with `content` unless it exists; True if this call made it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.link(temporary, path)  # fails if another launch made it first: theirs is kept
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


#: A status file is a few hundred bytes; anything bigger is not the probe's.
STATUS_MAX_BYTES = 4096


def read_status(state_home: Path, container: str, port: int) -> dict[str, object]:
    """The probe's last result for `container` (`launch.ssh.status_record`), or the record of
    "not probed yet" when there is none or it cannot be read. Never follows a symlink."""
    import json

    path = status_folder(state_home) / f"{container}.json"
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            record = json.loads(handle.read(STATUS_MAX_BYTES))
    except (OSError, ValueError):
        return plan.status_record(port, None, None)
    if not isinstance(record, dict):
        return plan.status_record(port, None, None)
    return {key: record.get(key) for key in ("port", "reachable", "latency_ms", "checked_at", "error")}
