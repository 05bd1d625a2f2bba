"""`supervisor/upstream_import.py`: upstream's mount rules in reverse, its agent-written state
read as hostile, and slots written into a real state store without overwriting one."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from supervisor.store import StateStore
from supervisor.upstream_import import (
    Gathered,
    Mapped,
    SlotFile,
    Unmappable,
    UpstreamLayout,
    claude_workdirs,
    host_folder,
    map_slots,
    opencode_workdirs,
    save_slots,
)

SESSION = "0b6f2c3e-8a1d-4e55-9f0a-1c2d3e4f5a6b"


def children_of(*names: str) -> Callable[[Path], list[Path]]:
    return lambda workspace: [workspace / name for name in names]


@pytest.mark.parametrize(("container", "expected"), [
    ("/root/Projects/ai", "/h/Projects/ai"),  # launched at the workspace root: the mirror
    ("/root/Projects/ai/x/sub", "/h/Projects/ai/x/sub"),
    ("/root/Projects/foo", "/h/Projects/ai/foo"),  # a child of the workspace, at DOCKER_DIR/<token>
    ("/root/Projects/my-app/src", "/h/Projects/ai/my app/src"),  # the token of "my app"
])
def test_container_folders_map_back_to_the_host_the_way_upstream_mounted_them(container: str, expected: str) -> None:
    assert host_folder(container, docker_dir="/root/Projects", workspace=Path("/h/Projects/ai"),
                       children=children_of("foo", "my app")) == Path(expected)


@pytest.mark.parametrize(("container", "workspace", "names", "reason"), [
    ("/srv/x", "/h/ai", (), "not below upstream's DOCKER_DIR"),
    ("/root/Projects/foo", None, (), "upstream had no WORKSPACE_DIR"),
    ("/root/Projects/foo", "/h/ai", ("bar",), "no folder 'foo'"),
    ("/root/Projects/a-b", "/h/ai", ("a b", "a_b", "a-b"), "several folders"),
])
def test_what_upstream_did_not_record_is_not_guessed(container: str, workspace: str | None,
                                                     names: tuple[str, ...], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        host_folder(container, docker_dir="/root/Projects", workspace=Path(workspace) if workspace else None,
                    children=children_of(*names))


def test_the_last_full_line_of_a_long_session_names_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "claude" / ".claude" / "projects" / "-root-Projects-foo"
    folder.mkdir(parents=True)
    early = {"cwd": "/root/Projects/foo/early", "sessionId": SESSION}
    later = {"cwd": "/root/Projects/foo", "sessionId": SESSION, "text": "y" * 1000}
    other = {"cwd": "/root/Projects/other", "sessionId": "another"}
    lines = [json.dumps(early)] + [json.dumps(later)] * 400 + [json.dumps(other), "{not json"]
    (folder / f"{SESSION}.jsonl").write_text("\n".join(lines) + "\n")  # ~400 KiB: only the tail is read
    assert claude_workdirs(tmp_path, [SESSION]) == {SESSION: "/root/Projects/foo"}


def test_a_symlinked_opencode_database_is_never_opened(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    with sqlite3.connect(elsewhere) as db:
        db.execute("CREATE TABLE session (id TEXT, directory TEXT)")
        db.execute("INSERT INTO session VALUES ('ses_1', '/root/Projects/foo')")
    db.close()
    folder = tmp_path / "opencode" / ".local" / "share" / "opencode"
    folder.mkdir(parents=True)
    os.symlink(elsewhere, folder / "opencode.db")
    result = opencode_workdirs(tmp_path, ["ses_1"])
    assert isinstance(result["ses_1"], Unmappable) and "symlink" in str(result["ses_1"])


def test_a_planted_symlink_in_the_path_to_the_sessions_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real" / "projects" / "-root-Projects-foo"
    real.mkdir(parents=True)
    (real / f"{SESSION}.jsonl").write_text(json.dumps({"cwd": "/root/Projects/foo", "sessionId": SESSION}) + "\n")
    state = tmp_path / "state"
    (state / "claude").mkdir(parents=True)
    os.symlink(tmp_path / "real", state / "claude" / ".claude")  # the agent replaced its .claude by a link
    result = claude_workdirs(state, [SESSION])
    assert isinstance(result[SESSION], Unmappable)


def test_a_slot_this_install_already_saved_is_kept(tmp_path: Path) -> None:
    project = tmp_path / "Projects" / "ai" / "foo"
    project.mkdir(parents=True)
    layout = UpstreamLayout(tmp_path / "upstream", tmp_path / "Projects" / "ai", "/root/Projects")

    def mapped(session: str) -> list[Mapped]:
        gathered = Gathered(((SlotFile("claude", 1, session, 1.0), "/root/Projects/foo"),), ())
        found, unmapped = map_slots(gathered, layout, lambda folder: (str(folder), "/root/Projects/foo"))
        assert unmapped == []
        return found

    first = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    saved, kept = anyio.run(save_slots, tmp_path / "state", mapped(first), backend="asyncio")
    assert (len(saved), len(kept)) == (1, 0)
    saved, kept = anyio.run(save_slots, tmp_path / "state", mapped(SESSION), backend="asyncio")
    assert (len(saved), len(kept)) == (0, 1)

    async def rows() -> list[tuple[str, str, int, str, str]]:
        async with StateStore.open(tmp_path / "state") as store:
            return [(row.tool, row.project, row.slot, row.session_id, row.workdir) for row in await store.slots()]

    assert anyio.run(rows, backend="asyncio") == [("claude", str(project), 1, first, "/root/Projects/foo")]
