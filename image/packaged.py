"""The files shipped inside the `image` package, walked the same way for every image.

Both image plans (the agent's `image/files/`, the gateway's `image/gateway/`) hash and tar
exactly these bytes, so one walk decides what "the packaged files" are: sorted, no
bytecode or editor backups.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable


def package_root() -> Traversable:
    """The `image` package's folder (installed or checked out)."""
    return resources.files("image")


def walk_files(node: Traversable, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(path below `node`, content) of every packaged file, in a stable order."""
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        path = f"{prefix}{child.name}"
        if child.is_dir():
            yield from walk_files(child, path + "/")
        elif not child.name.endswith((".pyc", "~")):
            yield path, child.read_bytes()
