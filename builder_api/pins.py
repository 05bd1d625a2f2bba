"""Running exactly the bytes a `command_hash` pin verified.

Checking a pinned script and then running its PATH is a race the agent wins: the project
is writable from its container, so it can swap the file after the check — or, since bash
reads a script as it goes, rewrite it while it runs and restore it afterwards, leaving a
`done` job and a matching pin behind. So the queue reads the pinned file ONCE, through a
descriptor reached without following a symlink (`jobs.read_pinned`), hashes those bytes,
and writes them to a private copy — a 0700 folder of the user's outside the project, which
the agent cannot reach — and the program gets the copy's path: as the command itself, or
as the argument that named the pinned file (`bash x.sh`, `python3 x.py`, `node x.js`,
`make -f Makefile`). Files the pinned script itself sources or imports are not covered.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder_api.jobs import read_pinned


class PinBroken(Exception):
    """The pinned file cannot be read safely or does not match: the job must not run."""


@contextmanager
def verified_copy(root: Path, relative: str, sha256: str) -> Iterator[Path]:
    """A private copy of `root/relative` whose bytes hash to `sha256`, removed on exit."""
    data, actual = read_pinned(root, relative)
    if data is None or actual != sha256:
        raise PinBroken(f"command_hash_mismatch: {relative} is {actual}, the pin is sha256:{sha256} — "
                        "the pinned file changed (or is a symlink): nothing was run")
    with tempfile.TemporaryDirectory(prefix="builder-api-pin-") as folder:
        os.chmod(folder, 0o700)
        copy = Path(folder) / (Path(relative).name or "pinned")
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        os.chmod(copy, 0o500)
        yield copy


def names_pinned_file(element: str, cwd: Path, root: Path, relative: str) -> bool:
    """Whether the argv element `element` (relative to the job's `cwd`, or absolute) is the
    pinned file's path — compared as text, never through the file system's symlinks."""
    pinned = os.path.normpath(root / relative)
    return os.path.normpath(element if os.path.isabs(element) else cwd / element) == pinned


def substitute(argv: list[str], cwd: Path, root: Path, relative: str, copy: Path) -> tuple[list[str], bool]:
    """`argv` with every element naming the pinned file replaced by the copy's path."""
    replaced = [str(copy) if names_pinned_file(arg, cwd, root, relative) else arg for arg in argv]
    return replaced, replaced != argv
