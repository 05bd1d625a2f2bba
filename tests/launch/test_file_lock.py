"""Host-side lock files: what an agent (or another user) could put in a lock's place, and
the bounded wait for a lock another process holds."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from launch.file_lock import acquire_lock, open_lock_file, take_lock, try_lock


@pytest.mark.parametrize("planted", ["symlink", "fifo", "folder"])
def test_a_planted_lock_file_is_refused_without_blocking(tmp_path: Path, planted: str) -> None:
    """A symlink would move the lock (and the file it creates) elsewhere; a FIFO would block
    `open` for ever without O_NONBLOCK."""
    target, lock = tmp_path / "elsewhere", tmp_path / "x.lock"
    if planted == "symlink":
        lock.symlink_to(target)
    elif planted == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    with pytest.raises(OSError):
        open_lock_file(lock)
    assert not target.exists()


def test_a_new_lock_file_is_private(tmp_path: Path) -> None:
    fd = open_lock_file(tmp_path / "x.lock")
    try:
        assert os.fstat(fd).st_mode & 0o777 == 0o600
    finally:
        os.close(fd)


def test_a_held_lock_is_waited_for_with_a_bound_and_free_once_released(tmp_path: Path) -> None:
    holder, waiter = open_lock_file(tmp_path / "x.lock"), open_lock_file(tmp_path / "x.lock")
    try:
        assert try_lock(holder)
        pauses: list[float] = []
        assert not take_lock(waiter, 0.2, sleep=pauses.append)
        assert pauses  # it tried more than once before giving up
        os.close(holder)
        holder = -1
        assert take_lock(waiter, 0.2)
    finally:
        for fd in (holder, waiter):
            if fd >= 0:
                os.close(fd)


@pytest.mark.anyio
async def test_the_async_wait_says_once_that_it_waits_and_gets_the_lock_when_released(tmp_path: Path) -> None:
    holder, waiter = open_lock_file(tmp_path / "x.lock"), open_lock_file(tmp_path / "x.lock")
    said: list[str] = []
    try:
        assert try_lock(holder)
        assert not await acquire_lock(waiter, 0.2, anyio.sleep, lambda: said.append("waiting"))
        assert said == ["waiting"]

        async def release_soon() -> None:
            await anyio.sleep(0.2)
            os.close(holder)

        async with anyio.create_task_group() as group:
            group.start_soon(release_soon)
            assert await acquire_lock(waiter, None, anyio.sleep)
    finally:
        os.close(waiter)
