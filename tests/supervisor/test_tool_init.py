"""`supervisor.tool_init` without an engine: the init container's cage, and the host-side lock.

The init container runs the image's OpenCode on the agent-written state folders, so it must
get less than a slot: no network, no capability, no project, no secret, nothing `status`
lists as a slot. The lock file lives in a folder no container mounts, yet it is opened as if
it were hostile (never followed, never blocking), and waiting for it is bounded. The locks
are real `flock`s held by a real second process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import supervisor.tool_init as tool_init
from launch.config import Config
from launch.mounts import PERSISTENCE
from launch.spec import LABEL_PREFIX, UPSTREAM_PROJECT_LABEL
from launch.tools import Tool
from supervisor.tool_init import INIT_COMMANDS, KEPT_ENV, init_container_body, locked, marker_path
from testbed.plans import create_body

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("config", [Config(), Config(sandbox_enabled=False, zai_api_key="z-secret")],
                         ids=["default", "sandbox-off-with-a-secret"])
def test_the_init_container_gets_less_than_the_slot(config: Config) -> None:
    slot = create_body(Tool.OPENCODE, "--slot 1", config)
    body = init_container_body(slot, Tool.OPENCODE)
    host = body["HostConfig"]
    # the same image, uid and guard-rails as the slot ...
    assert (body["Image"], body["User"]) == (slot["Image"], slot["User"])
    assert host["ReadonlyPaths"] == slot["HostConfig"]["ReadonlyPaths"] and host["Init"] is True
    assert body["Cmd"] == ["opencode", "--pure", "db", "path"]
    # ... only the tool's state, no network, no capability whatever the sandbox setting
    assert sorted(m["Target"] for m in host["Mounts"]) == sorted(p.target for p in PERSISTENCE[Tool.OPENCODE])
    assert all(not m["ReadOnly"] and m["Source"].startswith("/home/u/.llm-docker/projects/") for m in host["Mounts"])
    assert host["NetworkMode"] == "none" and body["NetworkDisabled"] is True
    assert "PortBindings" not in host and "ExposedPorts" not in body and "ExtraHosts" not in host
    assert (host["CapDrop"], host["CapAdd"], host["SecurityOpt"]) == (["ALL"], [], ["no-new-privileges:true"])
    assert not body["Tty"] and not body["OpenStdin"]
    # no secret, no provider or SSH setting: only what the entrypoint needs to know the tool
    assert {entry.split("=", 1)[0] for entry in body["Env"]} == set(KEPT_ENV)
    # `llm-docker gc` finds it by the launcher's identity; `status` never lists it as a slot
    labels = body["Labels"]
    assert labels[LABEL_PREFIX + "launcher-pid"] == slot["Labels"][LABEL_PREFIX + "launcher-pid"]
    assert not {LABEL_PREFIX + "tool", LABEL_PREFIX + "slot", UPSTREAM_PROJECT_LABEL} & set(labels)
    # the slot's own body is left as it was
    assert slot == create_body(Tool.OPENCODE, "--slot 1", config)


def test_only_opencode_has_shared_state_to_initialise() -> None:
    """Claude Code keeps one file per session; its shared `.claude.json` is seeded by the
    image's first-run hook, idempotently (tests/image/test_first_run.py)."""
    assert set(INIT_COMMANDS) == {Tool.OPENCODE}


async def test_a_planted_symlink_or_fifo_is_refused_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("the user's file\n")
    lock = marker_path(tmp_path, Tool.OPENCODE)
    lock.symlink_to(victim)
    with pytest.raises(OSError):
        async with locked(lock):
            pass
    assert victim.read_text() == "the user's file\n" and lock.is_symlink()
    lock.unlink()
    os.mkfifo(lock)  # opened without blocking, then refused: not a regular file
    with pytest.raises(OSError, match="not a regular file"):
        async with locked(lock):
            pass


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def hold(path: Path) -> subprocess.Popen[str]:
    """Another launcher: a process that holds the lock until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


async def test_waiting_for_another_launch_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = marker_path(tmp_path, Tool.OPENCODE)
    holder = hold(lock)
    try:
        monkeypatch.setattr(tool_init, "WAIT_SECONDS", 0.5)
        async with locked(lock) as fd:
            assert fd is None  # it gave up; the caller goes on with a notice
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    async with locked(lock) as fd:  # released with its holder
        assert fd is not None


async def test_the_marker_is_read_under_the_lock(tmp_path: Path) -> None:
    lock = marker_path(tmp_path, Tool.OPENCODE)
    async with locked(lock) as fd:
        assert fd is not None and tool_init._read_marker(fd) == ""
        tool_init._write_marker(fd, "sha256:abc")
    assert lock.read_text() == "sha256:abc\n" and (lock.stat().st_mode & 0o777) == 0o600
    async with locked(lock) as fd:
        assert fd is not None and tool_init._read_marker(fd) == "sha256:abc"
        tool_init._write_marker(fd, "sha256:d")  # a shorter id leaves nothing of the longer one
    assert lock.read_text() == "sha256:d\n"


async def test_starts_of_one_project_are_spaced_across_launches(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Three slots (in this test, three callers with their own descriptors, as three
    launches have) asking at once: each start is recorded at least the spacing after the
    previous one, whatever order the lock gives them."""
    import anyio

    monkeypatch.setitem(tool_init.START_SPACING, Tool.OPENCODE, 0.3)
    notices: list[str] = []
    starts: list[float] = []

    async def start() -> None:
        await tool_init.space_starts(tmp_path, Tool.OPENCODE, notices.append)
        starts.append(float(tool_init.spacing_path(tmp_path, Tool.OPENCODE).read_text()))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(start)
    starts.sort()
    assert notices == []
    # the file holds microseconds: a start recorded at .xxxxxx5 may read back a hair early
    assert all(later - earlier >= 0.3 - 1e-5 for earlier, later in zip(starts, starts[1:], strict=False)), starts
    await tool_init.space_starts(tmp_path, Tool.CLAUDE, notices.append)  # Claude Code: nothing to space
    assert not tool_init.spacing_path(tmp_path, Tool.CLAUDE).exists()


async def test_a_planted_spacing_file_is_refused_and_the_slot_starts(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("the user's file\n")
    tool_init.spacing_path(tmp_path, Tool.OPENCODE).symlink_to(victim)
    notices: list[str] = []
    await tool_init.space_starts(tmp_path, Tool.OPENCODE, notices.append)
    assert victim.read_text() == "the user's file\n"
    assert len(notices) == 1 and "starting at once" in notices[0]
