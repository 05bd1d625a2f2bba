"""Where the launch server's socket may live, and when a server counts as running other code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launch import server_wire


def test_a_private_runtime_folder_is_used_and_created_0700(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    folder = server_wire.runtime_folder({"XDG_RUNTIME_DIR": str(runtime)})
    assert folder == runtime / "llm-docker"
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("attack", ["symlink", "open to others", "foreign owner"])
def test_a_folder_that_is_not_the_users_own_is_refused(tmp_path: Path, attack: str) -> None:
    """Someone who made the folder first (another user, a symlink into their folder) would
    get the terminal's descriptors and the environment's secrets: no server then."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    target = runtime / "llm-docker"
    if attack == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        target.symlink_to(elsewhere)
    elif attack == "open to others":
        target.mkdir()
        target.chmod(0o777)
    else:
        target.mkdir(mode=0o700)
        os.chown(target, 64123, 64123)
    assert server_wire.runtime_folder({"XDG_RUNTIME_DIR": str(runtime)}) is None


def test_an_untrusted_xdg_runtime_dir_falls_back_to_tmp(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    folder = server_wire.runtime_folder({"XDG_RUNTIME_DIR": str(shared)}, uid=os.getuid())
    assert folder == Path("/tmp") / f"llm-docker-{os.getuid()}"


def test_the_fingerprint_follows_the_code_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "launch"
    package.mkdir()
    module = package / "plan.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(server_wire, "code_root", lambda: tmp_path)
    before = server_wire.code_fingerprint()
    assert server_wire.code_fingerprint() == before
    os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 1))
    assert server_wire.code_fingerprint() != before
    (package / "new.py").write_text("")
    assert server_wire.code_fingerprint() != before


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("on", True), ("off", False), ("0", False),
                                                ("False", False), ("no", False)])
def test_the_switch(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {server_wire.SERVER_SWITCH: value}
    assert server_wire.server_enabled(environ) is enabled


def test_messages_round_trip_and_oversized_ones_are_refused() -> None:
    encoded = server_wire.encode({"exit": 3})
    assert server_wire.decode_length(encoded[:4]) == len(encoded) - 4
    with pytest.raises(ValueError, match="over the limit"):
        server_wire.decode_length(server_wire.HEADER.pack(server_wire.MAX_REQUEST + 1))

