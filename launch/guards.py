"""Path guards: refuse dangerous mounts at launch, before Docker is contacted.

Host folders are judged by what they *resolve* to (`Path.resolve()`: symlinks, `..`,
trailing slashes and relative paths all collapse first), so `~/`, `./../..` or a symlink
to `/` cannot slip through the way they did upstream (docs/upstream.md#path-guards). The container-side
DOCKER_DIR is a plain POSIX path and is judged after normalisation.

Each refusal is one line that says what is wrong and what to do instead.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

from launch.errors import ConfigError
from launch.mounts import PERSISTENCE, SSH_KEYS

MIN_SEGMENTS = 3

#: Host folders that are never a project: system roots on Linux and macOS.
HOST_SYSTEM_ROOTS = frozenset({
    "/", "/Users", "/home", "/etc", "/var", "/tmp", "/private", "/private/tmp", "/private/var",
    "/private/etc", "/System", "/Library", "/Applications", "/Volumes", "/usr", "/bin", "/sbin",
    "/lib", "/lib32", "/lib64", "/opt", "/root", "/srv", "/mnt", "/media", "/proc", "/sys",
    "/dev", "/boot", "/run", "/nix", "/snap", "/var/tmp", "/usr/local",
})

#: Container paths DOCKER_DIR may not be, and roots it may not live under.
CONTAINER_SYSTEM_PATHS = frozenset({
    "/", "/root", "/etc", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/var", "/tmp", "/proc",
    "/sys", "/dev", "/home", "/opt", "/boot", "/srv", "/mnt", "/media", "/run",
})
CONTAINER_SYSTEM_PREFIXES = ("/etc", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/proc", "/sys",
                             "/dev", "/boot", "/run")


class PathRefused(ConfigError):
    """A folder that must not be mounted; the message is one line with a hint (exit 2)."""


def check_host_folder(path: Path, *, role: str, user_home: Path, state_home: Path) -> Path:
    """Resolve a host folder and refuse it if mounting it would expose too much.

    `role` names the folder in messages (`WORKSPACE_DIR`, `project folder`). Returns the
    resolved path. Relative paths are refused: callers resolve launch directories against
    the working directory themselves, and a relative WORKSPACE_DIR is a config mistake.
    """
    if not path.is_absolute():
        raise PathRefused(f"{role} '{path}' is relative — use an absolute path such as {user_home}/Projects")
    resolved = path.resolve()
    home = user_home.resolve()
    hint = f"launch from (or set it to) a project folder such as {home}/Projects/app"
    shown = f"'{path}'" if Path(os.path.normpath(path)) == resolved else f"'{path}' (= {resolved})"
    if resolved == home:
        raise PathRefused(f"{role} {shown} is your home directory — {hint}")
    if str(resolved) in _resolved_all(HOST_SYSTEM_ROOTS):
        raise PathRefused(f"{role} {shown} is a system folder — {hint}")
    if home.is_relative_to(resolved):
        raise PathRefused(f"{role} {shown} contains your home directory — {hint}")
    if len(resolved.parts) - 1 < MIN_SEGMENTS:
        raise PathRefused(
            f"{role} {shown} is too shallow (fewer than {MIN_SEGMENTS} path segments) — {hint}"
        )
    state = state_home.resolve()
    if resolved.is_relative_to(state) or state.is_relative_to(resolved):
        raise PathRefused(
            f"{role} {shown} overlaps llm-docker's own state folder {state} — "
            "agents must never reach it; launch from a project folder"
        )
    return resolved


def check_docker_dir(docker_dir: str) -> str:
    """Validate the container-side mount parent; returns it normalised."""
    if not docker_dir.startswith("/"):
        raise PathRefused(f"DOCKER_DIR '{docker_dir}' must be an absolute container path such as /root/Projects")
    normal = posixpath.normpath(docker_dir)
    normal = "/" + normal.lstrip("/")  # normpath keeps a leading '//'
    hint = "use a dedicated folder such as /root/Projects"
    if normal in CONTAINER_SYSTEM_PATHS:
        raise PathRefused(f"DOCKER_DIR '{docker_dir}' is a container system path — {hint}")
    if any(normal.startswith(prefix + "/") for prefix in CONTAINER_SYSTEM_PREFIXES):
        raise PathRefused(f"DOCKER_DIR '{docker_dir}' is under a container system path — {hint}")
    for target in _persistence_targets():
        if normal == target or _is_under(normal, target) or _is_under(target, normal):
            raise PathRefused(f"DOCKER_DIR '{docker_dir}' collides with the persistence mount {target} — {hint}")
    return normal


def _persistence_targets() -> Iterable[str]:
    for paths in PERSISTENCE.values():
        yield from (p.target for p in paths)
    yield SSH_KEYS.target


def _is_under(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip("/") + "/")


def _resolved_all(paths: Iterable[str]) -> frozenset[str]:
    """System roots plus what they resolve to here (macOS: /tmp -> /private/tmp)."""
    return frozenset(paths) | frozenset(str(Path(p).resolve()) for p in paths)
