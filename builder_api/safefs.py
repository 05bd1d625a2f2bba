"""Opening a file on behalf of a request without trusting the folders it sits in.

The project folder is mounted read-write in the agent's container, so any path inside it
can be swapped for a symlink (to `~/.ssh/id_rsa`, `~/.bashrc`, a dangling target), a FIFO
(that blocks whoever opens it) or a device at any moment — checking it at config load
proves nothing. So every file the API reads or writes for a request is resolved AT OPEN
TIME: from a descriptor of its anchor folder, one component at a time, each opened with
`O_NOFOLLOW` (a symlink anywhere is refused, never followed; `..` is refused outright), the
last one with `O_NONBLOCK` (a FIFO can never block us), and then `fstat`-checked: a
regular file only. `O_CREAT` together with `O_NOFOLLOW` never creates a file through a
dangling symlink (the kernel answers ELOOP).

A path inside the project is anchored at the project root (the agent owns everything
below it); any other path (the API's own logs under `$LLM_DOCKER_HOME`) at its parent
folder, which only the user can write.

The folders on the way are opened `O_PATH` on Linux (a folder that may be searched but
not listed still opens) and `O_RDONLY` elsewhere — macOS has no `O_PATH`; the choice is
`launch.portability`'s, so Linux CI runs the macOS path too. Both are `O_NOFOLLOW` per
component: the walls are the same.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path, PurePosixPath

from launch.portability import linux_mechanisms

READ = os.O_RDONLY
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
#: Errors that mean "something other than a plain file or folder is in the way".
_REFUSALS = {errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR, errno.EACCES, errno.EPERM}


def _folder_flags() -> int:
    """How a folder on the way is opened, trusted (an anchor) or not (add `O_NOFOLLOW`):
    `O_PATH` where Linux's mechanisms are used, a plain read-only folder descriptor
    elsewhere (read at every call, so the test switch reaches it)."""
    if sys.platform == "linux" and linux_mechanisms():
        return os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    return os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _step(folder: int, part: str) -> int:
    """The sub-folder `part` of `folder`, never through a symlink (ELOOP or ENOTDIR), and
    never blocking where the agent put a FIFO (a read-only open of one waits for a writer)."""
    return os.open(part, _folder_flags() | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)


class FileRefused(OSError):
    """The path is a symlink, runs through one, or is not a regular file: never opened."""


def anchor(path: Path, root: Path | None) -> tuple[Path, PurePosixPath]:
    """(trusted folder, the rest): the project root when `path` lies inside it (lexically,
    so a symlink on the way cannot move the anchor), else the path's own parent folder."""
    rest = _below(path, root)
    if root is not None and rest is not None:
        return root, rest
    return path.parent, PurePosixPath(path.name)


def _below(path: Path, root: Path | None) -> PurePosixPath | None:
    """`path` relative to `root` when it lies (lexically) below it, else None."""
    if root is None:
        return None
    try:
        rest = PurePosixPath(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        return None
    return rest if rest.parts else None


def _parts(relative: PurePosixPath) -> list[str]:
    if relative.is_absolute():
        raise FileRefused(errno.EINVAL, f"absolute path where a relative one belongs: {relative}")
    parts = [part for part in relative.parts if part != "."]
    if not parts or ".." in parts:
        raise FileRefused(errno.EINVAL, f"refused path: {relative}")
    return parts


def open_beneath(root: Path, relative: PurePosixPath | str, flags: int, mode: int = 0o600, *,
                 make_folders: bool = False) -> int:
    """A descriptor of the regular file `root/relative`, reached without following any
    symlink and without blocking. `make_folders` creates missing folders (0700) on the way,
    each through the descriptor of its parent. Raises `FileRefused`, or `FileNotFoundError`
    when the file (or a folder) is simply not there."""
    parts = _parts(PurePosixPath(relative))
    folder = os.open(root, _folder_flags())
    try:
        for part in parts[:-1]:
            try:
                step = _step(folder, part)
            except FileNotFoundError:
                if not make_folders:
                    raise
                try:
                    os.mkdir(part, 0o700, dir_fd=folder)
                except FileExistsError:
                    pass
                step = _step(folder, part)
            os.close(folder)
            folder = step
        descriptor = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode,
                             dir_fd=folder)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno in _REFUSALS:
            raise FileRefused(error.errno, f"refused {root / PurePosixPath(*parts)}: symlink, special file or "
                                           f"not a plain folder on the way ({os.strerror(error.errno or 0)})") from None
        raise
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise FileRefused(errno.EINVAL, f"refused {root / PurePosixPath(*parts)}: not a regular file")
    return descriptor


def open_file(path: Path, root: Path | None, flags: int = READ, mode: int = 0o600, *,
              make_folders: bool = False) -> int:
    """`open_beneath` for an absolute `path`, anchored by `anchor`."""
    base, rest = anchor(path, root)
    if make_folders and base == path.parent and not base.exists():
        base.mkdir(mode=0o700, parents=True, exist_ok=True)  # a host folder outside the project
    return open_beneath(base, rest, flags, mode, make_folders=make_folders)


def open_folder(path: Path, root: Path | None) -> int:
    """A descriptor of the folder `path` (`O_PATH` on Linux, see `_folder_flags`), reached
    like `open_beneath` reaches a file: for `*at` calls inside it, and for inotify through
    `/proc/self/fd/N`, which then watches exactly that folder."""
    below = _below(path, root)
    # inside the project: walked from its root; outside, the folder is the user's own
    base, rest = (path, PurePosixPath(".")) if root is None or below is None else (root, below)
    folder = os.open(base, _folder_flags())
    try:
        for part in [p for p in rest.parts if p != "."]:
            if part == "..":
                raise FileRefused(errno.EINVAL, f"refused path: {rest}")
            try:
                step = _step(folder, part)
            except OSError as error:
                if error.errno in _REFUSALS:
                    raise FileRefused(error.errno, f"refused folder {path}") from None
                raise
            os.close(folder)
            folder = step
    except BaseException:
        os.close(folder)
        raise
    return folder


def read_all(descriptor: int, limit: int) -> bytes:
    """The whole file behind `descriptor` (at most `limit` bytes; more is an error)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(descriptor, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise FileRefused(errno.EFBIG, f"file larger than {limit} bytes")
        chunks.append(chunk)
