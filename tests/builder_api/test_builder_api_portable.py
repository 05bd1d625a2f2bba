"""builder-api's portable paths (what macOS runs), exercised on Linux through the test
switch of `launch.portability`: the same walls without `O_PATH`, process groups through
psutil, and a hot reload and a live log feed that poll instead of using inotify."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import psutil
import pytest

from builder_api.events import Mailbox
from builder_api.live import FollowerHub
from builder_api.processes import group_running
from builder_api.safefs import APPEND, READ, FileRefused, open_file, open_folder, read_all
from launch.portability import PORTABLE_ONLY_VARIABLE

pytestmark = pytest.mark.anyio
REPOSITORY = Path(__file__).resolve().parents[2]
SECRET = "host secret\n"


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project whose agent planted symlinks to a host folder, next to real files."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "id_ed25519").write_text(SECRET)
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "app.log").write_text("line\n")
    (root / "linked").symlink_to(host)
    (root / "logs" / "key.log").symlink_to(host / "id_ed25519")
    (root / "logs" / "dangling.log").symlink_to(host / "created-by-the-api")
    yield root


def _uses_o_path(descriptor: int) -> bool:
    return bool(fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_PATH)


def test_safefs_without_o_path_keeps_every_wall(portable: None, project: Path) -> None:
    host = project.parent / "host"
    for name in ("linked/id_ed25519", "logs/key.log"):
        with pytest.raises(FileRefused):
            open_file(project / name, project, READ)
    for name in ("linked/new.log", "linked/sub/new.log", "logs/dangling.log"):
        with pytest.raises(FileRefused):
            open_file(project / name, project, APPEND, make_folders=True)
    with pytest.raises(FileRefused):
        open_folder(project / "linked", project)
    assert sorted(p.name for p in host.iterdir()) == ["id_ed25519"]
    descriptor = open_file(project / "logs" / "app.log", project, READ)
    try:
        assert read_all(descriptor, 100) == b"line\n"
    finally:
        os.close(descriptor)
    os.close(open_file(project / "new" / "deep" / "x.log", project, APPEND, make_folders=True))
    assert (project / "new" / "deep" / "x.log").is_file()
    folder = open_folder(project / "logs", project)
    try:
        assert not _uses_o_path(folder)  # the macOS way: a plain read-only folder descriptor
        assert "app.log" in os.listdir(folder)
    finally:
        os.close(folder)


def test_without_the_switch_linux_folders_are_o_path(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)  # this run may have it
    with pytest.raises(FileRefused):  # a symlinked folder right below the root, too
        open_folder(project / "linked", project)
    folder = open_folder(project / "logs", project)
    try:
        assert _uses_o_path(folder)
    finally:
        os.close(folder)


def test_safefs_imports_and_refuses_where_os_has_no_o_path(project: Path) -> None:
    """macOS's `os` has no `O_PATH`: the module must import and keep its walls there."""
    script = f"""
import os, sys
del os.O_PATH
from pathlib import Path
from builder_api.safefs import READ, FileRefused, open_file, open_folder
root = Path({str(project)!r})
try:
    open_file(root / "linked" / "id_ed25519", root, READ)
except FileRefused:
    pass
else:
    sys.exit("followed a symlinked folder")
os.close(open_folder(root / "logs", root))
os.close(open_file(root / "logs" / "app.log", root, READ))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            env={**os.environ, PORTABLE_ONLY_VARIABLE: "1"}, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def _until(condition: Callable[[], bool]) -> None:
    """Wait for something the kernel does soon (an exit, a reaping), bounded generously."""
    for _ in range(6000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("never happened")


def test_group_running_sees_members_and_not_zombies() -> None:
    """A group whose leader has exited (a zombie: nobody reaped it yet) but whose member
    still runs is running; once the member is gone, the zombie alone is not."""
    leader = subprocess.Popen(["sh", "-c", "sleep 600 & echo $!"], stdout=subprocess.PIPE,
                              start_new_session=True, text=True)
    assert leader.stdout is not None
    member = int(leader.stdout.readline())
    try:
        _until(lambda: psutil.Process(leader.pid).status() == psutil.STATUS_ZOMBIE)
        assert os.getpgid(member) == leader.pid
        assert group_running(leader.pid)
        os.kill(member, signal.SIGKILL)
        _until(lambda: not psutil.pid_exists(member) or psutil.Process(member).status() == psutil.STATUS_ZOMBIE)
        assert not group_running(leader.pid)  # only the unreaped leader is left, a zombie
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
        leader.wait()
    assert not group_running(leader.pid)


async def test_the_live_feed_polls_under_the_switch(portable: None, project: Path) -> None:
    """No inotify: the rescan alone delivers new lines, and a symlinked log stays unread."""
    hub = FollowerHub(lambda: project, lambda: 10, lambda: 10)
    mailbox = Mailbox(100)
    async with anyio.create_task_group() as group:
        await group.start(hub.run)
        assert hub._inotify is None
        with hub.follow(project / "logs" / "app.log", "app", mailbox), \
                hub.follow(project / "logs" / "key.log", "key", mailbox):
            with (project / "logs" / "app.log").open("a") as log:
                log.write("fresh\n")
            frame = await mailbox.get()
            assert frame == {"type": "log", "file": "app", "line": "fresh"}
        group.cancel_scope.cancel()
