"""What `cld`/`ocd` and the per-user launch server agree on: where the socket is, which code
the server runs, and the bytes they exchange.

Stdlib only and cheap: the client (`cli.launch_client`) imports this and nothing else of
ours, so a launch served by a warm server pays one interpreter start and no imports.

The socket lives in a folder only its user can enter: `$XDG_RUNTIME_DIR/llm-docker` when
that is the user's own, else `/tmp/llm-docker-<uid>` (created 0700; refused when it exists
as a symlink, belongs to someone else or is open to others — the client then launches in
process). One server per installation: the socket's name carries a hash of the Python
interpreter and of where the code lives, so two checkouts or venvs never share a server.

The server runs the code it imported when it started. The client sends a fingerprint of the
code on disk (every module's size and mtime, the interpreter's version, the user's groups);
a server that sees a different one answers `stale` and exits, and the client launches in
process and starts a fresh server: an upgrade, an edit in a checkout or a new `docker` group
membership never runs under an old server.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Set to off/0/false/no to launch in process, never through (or starting) a server.
SERVER_SWITCH = "LLM_DOCKER_LAUNCH_SERVER"
#: Seconds a server without requests lives (default `DEFAULT_IDLE_SECONDS`).
IDLE_SWITCH = "LLM_DOCKER_LAUNCH_SERVER_IDLE"
DEFAULT_IDLE_SECONDS = 3600.0
#: Set in a served launch's environment: its supervisor's parent is the server, not the
#: process that launched it — the client watches that one (`supervisor.tasks.watchdog`).
SERVED_MARK = "LLM_DOCKER_SERVED"
#: The packages whose code a server runs (the fingerprint covers them).
PACKAGES = ("launch", "engine", "image", "builder_api", "supervisor", "cli")
#: Upper bound of a request (argv + environment); a bigger one is refused, not truncated.
MAX_REQUEST = 1 << 20
HEADER = struct.Struct(">I")


def server_enabled(environ: Mapping[str, str]) -> bool:
    return environ.get(SERVER_SWITCH, "on").strip().lower() not in {"off", "0", "false", "no"}


def code_root() -> Path:
    """The folder holding our packages (a checkout, or a venv's site-packages)."""
    return Path(__file__).resolve().parent.parent


def runtime_folder(environ: Mapping[str, str], uid: int | None = None) -> Path | None:
    """The user's private folder for the socket, created if missing; None when it cannot be
    trusted (a symlink, another owner, open to group or others)."""
    uid = os.getuid() if uid is None else uid
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    candidates = []
    if runtime and _owned_private(Path(runtime), uid):
        candidates.append(Path(runtime) / "llm-docker")
    candidates.append(Path("/tmp") / f"llm-docker-{uid}")
    folder = candidates[0]
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return folder if _owned_private(folder, uid) else None


def _owned_private(folder: Path, uid: int) -> bool:
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == uid and info.st_mode & 0o077 == 0


def installation_key() -> str:
    """Which installation a server belongs to: the interpreter and the code's folder."""
    text = f"{sys.executable}\0{code_root()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def socket_path(folder: Path) -> Path:
    return folder / f"launch-{installation_key()}.sock"


def lock_path(folder: Path) -> Path:
    return folder / f"launch-{installation_key()}.lock"


def code_fingerprint() -> str:
    """The code a launch would run, as of now: every module's path, size and mtime under
    our packages, the interpreter's version and the user's groups (a server started before
    `usermod -aG docker` must not serve: its process lacks the group)."""
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\0{sys.executable}\0{sorted(os.getgroups())}\0".encode())
    root = code_root()
    for package in PACKAGES:
        for path, info in sorted(_modules(root / package)):
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _modules(folder: Path) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
            found.extend(_modules(Path(entry.path)))
        elif entry.name.endswith(".py"):
            found.append((entry.path, entry.stat(follow_symlinks=False)))
    return found


def encode(message: Mapping[str, Any]) -> bytes:
    """One length-prefixed JSON message."""
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def decode_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_REQUEST:
        raise ValueError(f"message of {length} bytes is over the limit")
    return int(length)


def read_message(connection: socket.socket, received: bytes = b"") -> dict[str, Any] | None:
    """The next length-prefixed JSON object on `connection`; None when the peer closed before
    all of it came (a killed peer). `received`: its first bytes, when they were read already
    (the server reads them with the terminal's descriptors). Raises ValueError for anything
    that is not one object within `MAX_REQUEST` bytes."""
    data = bytearray(received)
    if not _read_up_to(connection, data, HEADER.size):
        return None
    length = decode_length(bytes(data[:HEADER.size]))
    if not _read_up_to(connection, data, HEADER.size + length):
        return None
    message = json.loads(data[HEADER.size:HEADER.size + length])
    if not isinstance(message, dict):
        raise ValueError("the message is not an object")
    return message


def _read_up_to(connection: socket.socket, data: bytearray, size: int) -> bool:
    """Read until `data` holds `size` bytes (never past them: the next message stays on the
    socket); False at end of stream."""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return False
        data += chunk
    return True
