"""inotify through the event loop: a file descriptor that `anyio.wait_readable` wakes on
when something in a watched folder changes (Linux). No thread, no polling."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from pathlib import Path

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = (
    0x2, 0x4, 0x8, 0x40, 0x80, 0x100, 0x200)
IN_ONLYDIR = 0x01000000
EVENT_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
WATCHED = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE


class Inotify:
    """The few inotify calls we need, through libc (Linux)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")

    def watch(self, folder: Path) -> None:
        if folder.is_dir() and self._libc.inotify_add_watch(self.fd, os.fsencode(folder), WATCHED) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")

    def watch_descriptor(self, descriptor: int) -> int:
        """Watch the folder behind an `O_PATH` descriptor (see `safefs.open_folder`): the path
        `/proc/self/fd/N` names exactly that folder, whatever happens to its path afterwards.
        Returns the watch descriptor (the same one for the same folder)."""
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(f"/proc/self/fd/{descriptor}"), WATCHED | IN_ONLYDIR)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch failed")
        return int(wd)

    def unwatch(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read_watches(self) -> set[int]:
        """The watch descriptors that saw events since the last read (non-blocking)."""
        seen: set[int] = set()
        try:
            while data := os.read(self.fd, 65536):
                offset = 0
                while offset + EVENT_HEADER.size <= len(data):
                    wd, _mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
                    seen.add(wd)
                    offset += EVENT_HEADER.size + length
        except BlockingIOError:
            pass
        return seen

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)
