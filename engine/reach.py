"""Which engine endpoint a client uses, where that choice came from, and what to tell the
user when nothing answers there.

"Start it, e.g. sudo systemctl start docker" is wrong advice for a mistyped `DOCKER_HOST`:
the engine may be running fine on the default socket. So the one line names the endpoint,
its origin — a Docker context, `DOCKER_HOST`, or the default socket — how the connection
failed, and advice that fits that origin and failure:

* permission denied on a socket: the user is not in the group that owns it (`docker`);
* `DOCKER_HOST` set: check it, or unset it to use the default socket;
* a Docker context: check it, or go back to the default one;
* the default socket missing or refusing: start the engine;
* nothing found at all: install and start Docker.

The endpoint is resolved as aiodocker resolves it (a context other than `default` first,
then `DOCKER_HOST`, then the first socket found), without connecting.
"""

from __future__ import annotations

import dataclasses
import errno
import grp
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import aiodocker
import aiodocker.docker

__all__ = ["DEFAULT_SOCKETS", "Endpoint", "no_endpoint_message", "resolve", "unreachable_message"]

#: Where aiodocker looks for a local engine when nothing names one (its private list, read
#: once; the fallback is that list as of aiodocker 0.27).
DEFAULT_SOCKETS: tuple[Path, ...] = tuple(getattr(aiodocker.docker, "_sock_search_paths", (
    Path("/run/docker.sock"), Path("/var/run/docker.sock"), Path.home() / ".docker/run/docker.sock")))
DOCKER_CONFIG = Path(".docker/config.json")
START_ADVICE = "start the engine, e.g. `sudo systemctl start docker` (Docker Desktop: start the app)"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """An endpoint and its origin: `source` is "context", "DOCKER_HOST" or "default";
    `url` is None when none was found (or the context named is broken: `problem` says how)."""

    url: str | None
    source: str
    context: str = ""
    #: Where the context was chosen: "DOCKER_CONTEXT" or "~/.docker/config.json".
    context_from: str = ""
    problem: str = ""

    def origin(self) -> str:
        """`set by DOCKER_HOST`, `set by the Docker context NAME (...)`, `the default socket`."""
        if self.source == "context":
            return f"set by the Docker context {self.context} (chosen by {self.context_from})"
        if self.source == "DOCKER_HOST":
            return "set by DOCKER_HOST"
        return "the default socket"


def resolve(environ: Mapping[str, str] = os.environ, home: Path | None = None) -> Endpoint:
    """The endpoint a client made now would use, and why (aiodocker's own order). Never raises."""
    chosen_by = "DOCKER_CONTEXT" if environ.get("DOCKER_CONTEXT") else f"~/{DOCKER_CONFIG}"
    contexts = getattr(aiodocker.Docker, "_get_docker_context_endpoint", lambda: None)  # aiodocker >= 0.25
    try:
        context = contexts()
    except (aiodocker.DockerError, OSError, ValueError) as error:  # a context named but broken
        name = environ.get("DOCKER_CONTEXT") or _current_context(home or Path.home())
        said = str(getattr(error, "message", error))
        return Endpoint(None, "context", name, chosen_by, "no such context" if "not found" in said else said)
    if context is not None:
        return Endpoint(context.host, "context", context.context_name or "?", chosen_by)
    if "DOCKER_HOST" in environ:
        return Endpoint(environ["DOCKER_HOST"], "DOCKER_HOST")
    found = next((path for path in DEFAULT_SOCKETS if path.is_socket()), None)
    return Endpoint(f"unix://{found}" if found else None, "default")


def _current_context(home: Path) -> str:
    try:
        name = json.loads((home / DOCKER_CONFIG).read_text()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return "?"
    return str(name)


def no_endpoint_message(endpoint: Endpoint, cause: str = "") -> str:
    """The line when the client has nowhere to connect, or cannot use what it was given."""
    if endpoint.problem:
        return (f"the Docker context {endpoint.context} (chosen by {endpoint.context_from}) is broken "
                f"({endpoint.problem}) — {_context_advice(endpoint)}")
    if endpoint.url is not None and endpoint.source == "DOCKER_HOST":
        return (f"cannot use DOCKER_HOST={endpoint.url} ({cause or 'not an endpoint'}) — check DOCKER_HOST: "
                "unix://PATH, tcp://HOST:PORT or ssh://USER@HOST (unset it to use the default socket)")
    sockets = ", ".join(str(path) for path in DEFAULT_SOCKETS)
    return (f"no Docker engine found (no DOCKER_HOST, no Docker context, no socket at {sockets}) — "
            "install Docker and start it, e.g. `sudo systemctl start docker`")


def unreachable_message(endpoint: Endpoint, url: str, error: BaseException) -> str:
    """The line when the client had an endpoint, `url`, and nothing answered there."""
    failure = _os_error(error)
    cause = _cause(failure, error)
    said = f"cannot reach the Docker engine at {url}, {endpoint.origin()} ({cause})"
    if failure is not None and failure.errno in (errno.EACCES, errno.EPERM) and url.startswith("unix://"):
        return f"{said} — {_group_advice(Path(url.removeprefix('unix://')))}"
    if endpoint.source == "DOCKER_HOST":
        return f"{said} — check DOCKER_HOST={url} (unset it to use the default socket)"
    if endpoint.source == "context":
        return f"{said} — {_context_advice(endpoint)}"
    return f"{said} — {START_ADVICE}"


def _context_advice(endpoint: Endpoint) -> str:
    back = ("unset DOCKER_CONTEXT" if endpoint.context_from == "DOCKER_CONTEXT"
            else "run `docker context use default`")
    return f"check it with `docker context inspect {endpoint.context}`, or {back} to use the default socket"


def _group_advice(path: Path) -> str:
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        group = "docker"
    return (f"you may not use {path}: join the group {group} that owns it (`sudo usermod -aG {group} $USER`, "
            "then log in again)")


def _os_error(error: BaseException) -> OSError | None:
    """The operating system's own failure under aiodocker's and aiohttp's wrappers."""
    seen: BaseException | None = error
    found: OSError | None = None
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


def _cause(failure: OSError | None, error: BaseException) -> str:
    if failure is None:
        return str(error).strip() or type(error).__name__
    if isinstance(failure, socket.gaierror):
        return f"unknown host: {failure.strerror}"
    if failure.errno == errno.ENOENT:
        return "no such socket"
    return os.strerror(failure.errno).lower() if failure.errno and failure.errno > 0 else str(failure)
