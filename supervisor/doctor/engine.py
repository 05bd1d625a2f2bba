"""`llm-docker doctor`: which engine answers (`engine/kind.py`), and is there disk space for
its images and for `$LLM_DOCKER_HOME`?

An image build needs a few GB in the engine's root dir (the agent images are ~2 GB); the
state database, logs and sessions need little, but a full disk stops a slot's save (it is
finished by the next launch). The engine's root dir is measured only where it is this
machine's folder — a Docker Engine or Podman on a local socket; Docker Desktop and remote
engines keep it in their VM or on another machine. The thresholds and verdicts are pure
(`space_finding`); the measuring is `free_space`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from engine.kind import EngineIdentity, EngineKind
from supervisor.doctor.report import Finding, fail, ok, warn

ENGINE = "engine"
DISK = "disk"

GIB = 1024**3
MIB = 1024**2
#: The engine's root dir: an agent image build needs ~2 GB, a few builds' layers more.
ENGINE_FAIL_BELOW = 2 * GIB
ENGINE_WARN_BELOW = 10 * GIB
#: `$LLM_DOCKER_HOME`: the state database, logs, the agents' sessions.
HOME_FAIL_BELOW = 200 * MIB
HOME_WARN_BELOW = 1 * GIB

KIND_NAMES = {EngineKind.DOCKER_ENGINE: "Docker Engine", EngineKind.DOCKER_DESKTOP: "Docker Desktop",
              EngineKind.PODMAN: "Podman", EngineKind.REMOTE: "a remote engine"}


def engine_finding(identity: EngineIdentity) -> Finding:
    name = KIND_NAMES.get(identity.kind, str(identity.kind))
    system = f" on {identity.operating_system}" if identity.operating_system else ""
    return ok(ENGINE, f"{name} {identity.version or '(version unknown)'}{system} at {identity.endpoint}")


def unreachable_finding(line: str) -> Finding:
    """An unreachable engine, in the launcher's own words (`engine/reach.py`: the endpoint,
    where it came from, the fitting fix): what `cld` would say, split at its fix."""
    said, _, fix = line.partition(" — ")
    return fail(ENGINE, f"{said} — every launch needs it", fix or "start the Docker engine")


def engine_root(identity: EngineIdentity, info: dict[str, Any]) -> Path | None:
    """The engine's root dir when it is a folder of this machine, else None."""
    root = info.get("DockerRootDir")
    local = identity.kind in (EngineKind.DOCKER_ENGINE, EngineKind.PODMAN) and identity.endpoint.startswith("unix:")
    if not isinstance(root, str) or not root.startswith("/") or not local or sys.platform != "linux":
        return None
    return Path(root)


def free_space(path: Path) -> tuple[Path, int, int] | None:
    """(the existing folder measured, free bytes for an unprivileged writer, total bytes) of
    `path` or its nearest existing parent; None if none can be measured. Blocks: run it in a
    worker thread."""
    for candidate in (path, *path.parents):
        try:
            if candidate.is_dir():
                usage = shutil.disk_usage(candidate)
                return candidate, usage.free, usage.total
        except OSError:
            continue
    return None


def space_finding(what: str, measured: tuple[Path, int, int] | None, *, fail_below: int, warn_below: int,
                  fix: str) -> Finding:
    if measured is None:
        return warn(DISK, f"{what}: free space cannot be measured", fix)
    folder, free, total = measured
    text = f"{what} ({folder}): {_size(free)} free of {_size(total)}"
    if free < fail_below:
        return fail(DISK, f"{text} — below {_size(fail_below)}", fix)
    if free < warn_below:
        return warn(DISK, f"{text} — below {_size(warn_below)}", fix)
    return ok(DISK, text)


def home_space(state_home: Path, measured: tuple[Path, int, int] | None) -> Finding:
    return space_finding("$LLM_DOCKER_HOME", measured, fail_below=HOME_FAIL_BELOW, warn_below=HOME_WARN_BELOW,
                         fix=f"free space on the file system of {state_home} (old logs: {state_home}/logs)")


def engine_space(root: Path, measured: tuple[Path, int, int] | None) -> Finding:
    return space_finding("the engine's root dir", measured, fail_below=ENGINE_FAIL_BELOW,
                         warn_below=ENGINE_WARN_BELOW,
                         fix="`docker image prune` removes dangling images, `docker builder prune` the build cache")


def engine_space_unseen(identity: EngineIdentity) -> Finding:
    where = KIND_NAMES.get(identity.kind, str(identity.kind))
    return ok(DISK, f"the engine's root dir is not on this machine ({where}): `docker system df` shows its use")


def _size(count: int) -> str:
    if count >= GIB:
        return f"{count / GIB:.1f} GiB"
    return f"{count / MIB:.0f} MiB"

