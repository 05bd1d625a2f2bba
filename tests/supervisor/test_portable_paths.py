"""The supervisor's portable paths (what macOS runs), on Linux: HOST_PORTS sockets bound
at their plain path under the test switch of `launch.portability` (and refused clearly when
too long for macOS), and the tripwire's quarantine onto another file system, which copies
through folder descriptors and never follows a symlink the agent planted."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from launch.hostfacts import gather_surface
from launch.portability import PORTABLE_ONLY_VARIABLE
from launch.surface import plan_protection
from supervisor import tripwire
from supervisor.tasks.host_ports import MAX_PORTABLE_SOCKET_PATH, listen, socket_path

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- host-secret\n"


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")


@pytest.fixture
def folder_descriptor(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    folder = tmp_path / "ports"
    folder.mkdir()
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    yield folder, descriptor
    os.close(descriptor)


# -- HOST_PORTS ------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_host_port_socket_at_its_plain_path_under_the_switch(portable: None,
                                                                  folder_descriptor: tuple[Path, int]) -> None:
    folder, descriptor = folder_descriptor
    assert socket_path(folder, descriptor, 8080) == folder / "8080.sock"
    listener = await listen(folder, descriptor, 8080)
    async with listener:
        assert (folder / "8080.sock").stat().st_mode & 0o777 == 0o666  # the gateway's root may connect
        async with anyio.create_task_group() as group:
            async def answer(stream: anyio.abc.ByteStream) -> None:
                async with stream:
                    await stream.send(b"relayed")

            group.start_soon(listener.serve, answer)
            async with await anyio.connect_unix(folder / "8080.sock") as client:
                assert await client.receive() == b"relayed"
            group.cancel_scope.cancel()


def test_host_port_socket_path_too_long_for_macos_is_refused(portable: None, tmp_path: Path) -> None:
    folder = tmp_path / ("x" * (MAX_PORTABLE_SOCKET_PATH - len(str(tmp_path))))
    with pytest.raises(OSError, match="over macOS's limit of 103: use a shorter LLM_DOCKER_HOME"):
        socket_path(folder, 3, 8080)


def test_host_port_socket_through_the_descriptor_on_linux(folder_descriptor: tuple[Path, int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)  # this run may have it
    folder, descriptor = folder_descriptor
    assert socket_path(folder, descriptor, 8080) == Path(f"/proc/self/fd/{descriptor}/8080.sock")


# -- the tripwire's quarantine on another file system ----------------------------------------

@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs for `$LLM_DOCKER_HOME`, so the quarantine cannot be a rename (EXDEV)."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


def test_cross_file_system_quarantine_never_follows_a_planted_symlink(tmp_path: Path,
                                                                      other_file_system: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "id_ed25519").write_text(SECRET)
    (host / "private").mkdir()
    (host / "private" / "notes").write_text(SECRET)
    project = tmp_path / "p"
    (project / ".git").mkdir(parents=True)
    state = other_file_system
    assert os.stat(project).st_dev != os.stat(state).st_dev
    tripwire.arm(state, "run-1", project, plan_protection(gather_surface(project), commit=False))
    # the agent: settings with links into the host, a script, a nested folder, a FIFO
    settings = project / ".vscode"
    (settings / "deep" / "er").mkdir(parents=True)
    (settings / "tasks.json").write_text('{"runOn": "folderOpen"}')
    (settings / "run.sh").write_text("#!/bin/sh\n")
    (settings / "run.sh").chmod(0o755)
    (settings / "key").symlink_to(host / "id_ed25519")
    (settings / "deep" / "home").symlink_to(host)
    (settings / "deep" / "er" / "file").write_text("x")
    os.mkfifo(settings / "deep" / "pipe")
    (project / ".envrc").symlink_to(host / "id_ed25519")

    report = tripwire.settle(state, "run-1")

    assert report is not None and report.quarantine is not None, report
    assert report.problems == (), report.problems
    assert {c.relative for c in report.changes} == {".vscode", ".envrc"}
    moved = report.quarantine / tripwire.FILES
    assert not settings.exists() and not (project / ".envrc").is_symlink()
    assert os.readlink(moved / ".vscode" / "key") == str(host / "id_ed25519")
    assert os.readlink(moved / ".vscode" / "deep" / "home") == str(host)
    assert os.readlink(moved / ".envrc") == str(host / "id_ed25519")
    assert (moved / ".vscode" / "tasks.json").read_text() == '{"runOn": "folderOpen"}'
    assert (moved / ".vscode" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (moved / ".vscode" / "deep" / "er" / "file").read_text() == "x"
    assert not (moved / ".vscode" / "deep" / "pipe").exists()
    for folder, _, files in os.walk(report.quarantine):  # os.walk does not follow links either
        for name in files:
            path = Path(folder) / name
            assert path.is_symlink() or SECRET not in path.read_text(), path
    assert (host / "id_ed25519").read_text() == SECRET and (host / "private" / "notes").read_text() == SECRET
    tripwire.accept(state, report.quarantine_id or "")
    assert os.readlink(project / ".vscode" / "key") == str(host / "id_ed25519")


def test_a_sparse_terabyte_the_agent_plants_costs_the_quarantine_only_its_start(
        tmp_path: Path, other_file_system: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems the quarantine is a copy: a sparse file of a terabyte (no disk
    in the project) would fill the user's home for as long as the check ran."""
    monkeypatch.setattr(tripwire, "MAX_QUARANTINED_BYTES", 2 * 1024 * 1024)  # the tmpfs holds 8 MB
    project = tmp_path / "p"
    (project / ".git").mkdir(parents=True)
    state = other_file_system
    tripwire.arm(state, "run-1", project, plan_protection(gather_surface(project), commit=False))
    (project / ".vscode").mkdir()
    (project / ".vscode/tasks.json").write_text('{"runOn": "folderOpen"}')
    with (project / ".vscode/big").open("wb") as big:
        big.truncate(1 << 40)
    report = tripwire.settle(state, "run-1")
    assert report is not None and report.quarantine is not None and report.problems == (), report
    assert not (project / ".vscode").exists()
    moved = report.quarantine / tripwire.FILES / ".vscode"
    assert (moved / "tasks.json").read_text() == '{"runOn": "folderOpen"}'
    assert (moved / "big").stat().st_size <= tripwire.MAX_QUARANTINED_BYTES + tripwire.KEPT_OF_EVERY_FILE
