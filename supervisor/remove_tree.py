"""Removing a folder an agent could write into, whatever it put there.

`shutil.rmtree` recurses once per folder level (Python 3.11): an agent's chain of a few
thousand nested folders ends it with a `RecursionError` — which `ignore_errors` does not
catch — in the middle of a slot's save. Here the tree is flattened instead: each folder's
sub-folders are renamed up into the top folder, so at most two folders are open at a time
and no call nests, however deep the tree. Nothing is ever followed: a symlink is an entry
like any other and is unlinked, never entered.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from pathlib import Path

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HOISTED_PREFIX = ".llm-docker-removing-"


def remove_tree(path: Path) -> None:
    """Remove `path` (a folder, or anything else) and all it holds; best effort: entries that
    cannot be removed stay, without an error. Blocks: run it in a worker thread."""
    try:
        parent = os.open(path.parent, _DIRECTORY_FLAGS)
    except OSError:
        return
    try:
        try:
            os.unlink(path.name, dir_fd=parent)
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno not in (errno.EISDIR, errno.EPERM):  # a folder (EPERM: macOS)
                return
        top = _open_folder(parent, path.name)
        if top is None:
            return
        try:
            _empty(top)
        finally:
            os.close(top)
        with contextlib.suppress(OSError):
            os.rmdir(path.name, dir_fd=parent)
    finally:
        os.close(parent)


def _empty(top: int) -> None:
    """Empty the open folder `top` without recursion: files go, every sub-folder's own
    sub-folders are hoisted into `top` under fresh names, then the emptied sub-folder goes.
    Ends when `top` holds nothing removable."""
    stuck: set[str] = set()
    while True:
        with os.scandir(top) as listing:
            entries = [entry.name for entry in listing if entry.name not in stuck]
        if not entries:
            return
        for name in entries:
            if not _remove_one(top, name):
                stuck.add(name)


def _remove_one(top: int, name: str) -> bool:
    """Remove the entry `name` of `top` (a folder: once its sub-folders are hoisted and its
    files gone). False when it cannot be removed (then it is left alone)."""
    try:
        info = os.stat(name, dir_fd=top, follow_symlinks=False)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        try:
            os.unlink(name, dir_fd=top)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True
    folder = _open_folder(top, name)
    if folder is None:
        return False
    try:
        with os.scandir(folder) as listing:
            inside = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
        for child, is_folder in inside:
            if is_folder:
                _hoist(folder, child, top)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(child, dir_fd=folder)
    except OSError:
        return False
    finally:
        os.close(folder)
    try:
        os.rmdir(name, dir_fd=top)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _open_folder(top: int, name: str) -> int | None:
    """The folder `name` of `top`, opened and made the owner's to change; one the agent made
    unreadable (its own files: the same uid) is given back its owner's rights first."""
    for attempt in range(2):
        try:
            opened = os.open(name, _DIRECTORY_FLAGS, dir_fd=top)
        except PermissionError:
            if attempt == 0:
                with contextlib.suppress(OSError):
                    os.chmod(name, 0o700, dir_fd=top)  # a folder (stat above), not a link
        except OSError:
            return None
        else:
            with contextlib.suppress(OSError):
                os.fchmod(opened, 0o700)  # entries of a read-only folder can be removed too
            return opened
    return None


def _hoist(folder: int, child: str, top: int) -> None:
    """Rename the sub-folder `child` of `folder` into `top` under a fresh name nobody can
    have taken before (a random one)."""
    for _ in range(3):
        try:
            os.rename(child, f"{_HOISTED_PREFIX}{uuid.uuid4().hex}", src_dir_fd=folder, dst_dir_fd=top)
            return
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                return
