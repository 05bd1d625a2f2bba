"""Where the launch server's socket may live, and when a server counts as running other code."""

from __future__ import annotations

import os
import socket
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



def test_a_message_is_read_whole_across_pieces_and_the_next_one_stays_on_the_socket() -> None:
    """The server reads a request's first bytes with the terminal's descriptors, the rest after;
    the client reads the `exit` message that follows `started`."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        first, second = server_wire.encode({"started": 7}), server_wire.encode({"exit": 0})
        theirs.sendall(first[3:] + second)
        assert server_wire.read_message(ours, first[:3]) == {"started": 7}
        assert server_wire.read_message(ours) == {"exit": 0}


@pytest.mark.parametrize("sent", [b"", b"\0\0", server_wire.encode({"exit": 1})[:-1]])
def test_a_peer_gone_before_a_whole_message_is_none(sent: bytes) -> None:
    """A killed supervisor or client: no message, not an error."""
    ours, theirs = socket.socketpair()
    with ours:
        theirs.sendall(sent)
        theirs.close()
        assert server_wire.read_message(ours) is None


@pytest.mark.parametrize("body", [b"[1]", b"not json", b"\"text\""])
def test_anything_but_one_object_is_refused(body: bytes) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(server_wire.HEADER.pack(len(body)) + body)
        with pytest.raises(ValueError):
            server_wire.read_message(ours)
