"""The host-executed surface: what is found on disk, and how a launch protects it (no Docker)."""

from __future__ import annotations

import os
from pathlib import Path

from launch.hostfacts import gather_surface, read_small_file
from launch.surface import GitMode, Kind, SurfaceFacts, plan_protection


def make_repository(root: Path) -> None:
    for folder in (".git/hooks", ".git/info", ".git/objects", ".vscode", ".claude/commands", "src"):
        (root / folder).mkdir(parents=True)
    (root / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git/config").write_text("[core]\n\thooksPath = .husky/_\n")
    (root / ".vscode/tasks.json").write_text("{}")
    (root / ".mcp.json").write_text("{}")


def test_gathered_surface_sees_kinds_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_repository(root)
    (root / ".envrc").symlink_to("/etc/passwd")
    os.mkfifo(root / ".pre-commit-config.yaml")
    (root / ".husky/_").mkdir(parents=True)
    facts = gather_surface(root)
    entries = facts.entries
    assert entries[".git"] is Kind.DIRECTORY and entries[".vscode"] is Kind.DIRECTORY
    assert entries[".mcp.json"] is Kind.FILE
    assert entries[".envrc"] is Kind.SYMLINK  # never followed to /etc/passwd
    assert entries[".pre-commit-config.yaml"] is Kind.OTHER  # a FIFO: looked at, never opened
    assert entries[".idea"] is Kind.ABSENT
    assert entries[".git/config"] is Kind.FILE and entries[".git/commondir"] is Kind.ABSENT
    assert entries[".husky/_"] is Kind.DIRECTORY  # core.hooksPath inside the project is surface too


def test_hooks_path_or_submodule_behind_a_symlink_is_never_a_pin(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_repository(root)
    outside = tmp_path / "outside"
    (outside / "_").mkdir(parents=True)
    (root / ".husky").symlink_to(outside)
    (root / ".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n[submodule "up"]\n\tpath = ../up\n')
    (root / "lib").mkdir()
    (root / "lib/.git").write_text("gitdir: ../.git/modules/lib\n")
    entries = gather_surface(root).entries
    assert ".husky/_" not in entries  # its parent is a symlink out of the project
    assert entries["lib/.git"] is Kind.FILE
    assert not any(key.startswith("..") for key in entries)


def test_read_mode_pins_git_whole_and_watches_what_is_absent(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_repository(root)
    (root / ".envrc").symlink_to("x")
    protection = plan_protection(gather_surface(root), commit=False)
    assert protection.git_mode is GitMode.READ
    assert {".git", ".vscode", ".claude", ".mcp.json"} <= set(protection.pins)
    assert not any(pin.startswith(".git/") for pin in protection.pins)
    assert {".envrc", ".idea", ".devcontainer", ".github"} <= set(protection.watched)
    assert protection.writable_pins == () and protection.create == ()


def test_commit_mode_plan(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_repository(root)
    (root / ".git/hooks").rmdir()
    protection = plan_protection(gather_surface(root), commit=True)
    assert protection.git_mode is GitMode.COMMIT
    assert protection.writable_pins == (".git",)
    assert {".git/config", ".git/hooks", ".git/info"} <= set(protection.pins)
    assert protection.create == (".git/hooks",)
    assert {".git/commondir", ".git/config.worktree", ".git/gitdir", ".git/modules"} <= set(protection.watched)


def test_commit_mode_refuses_a_symlinked_hooks_folder(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_repository(root)
    (root / ".git/hooks").rmdir()
    (root / ".git/hooks").symlink_to(tmp_path)
    protection = plan_protection(gather_surface(root), commit=True)
    assert protection.git_mode is GitMode.READ
    assert protection.pins.count(".git") == 1
    assert "symlink" in protection.notes[0]


def add_worktree_folder(repository: Path, name: str, worktree: Path) -> Path:
    """What `git worktree add` makes in `repository`'s git folder for `worktree`: its HEAD,
    its way to the common folder, and the back-link to the worktree's gitfile."""
    folder = repository / ".git/worktrees" / name
    folder.mkdir(parents=True)
    (folder / "HEAD").write_text(f"ref: refs/heads/{name}\n")
    (folder / "commondir").write_text("../..\n")
    (folder / "gitdir").write_text(f"{worktree}/.git\n")
    return folder


def test_worktree_pins_its_gitfile_and_mounts_its_git_folders_read_only(tmp_path: Path) -> None:
    main = tmp_path / "main"
    make_repository(main)
    wt = tmp_path / "wt"
    worktree_git = add_worktree_folder(main, "wt", wt)
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {worktree_git}\n")
    facts = gather_surface(wt)
    assert facts.external_git_dirs == (main / ".git",)  # the common folder holds the worktree's folder
    protection = plan_protection(facts, commit=True)
    assert protection.git_mode is GitMode.GITFILE and ".git" in protection.pins
    assert protection.external == (main / ".git",)
    assert "worktree" in protection.notes[0]


def test_a_gitfile_cannot_pick_another_repository_of_the_user(tmp_path: Path) -> None:
    """The agent writes a gitfile naming another project's repository (or one of its
    worktrees): real git folders, but none names this folder back — nothing is mounted."""
    secret = tmp_path / "secret"
    make_repository(secret)
    other_worktree = add_worktree_folder(secret, "theirs", tmp_path / "theirs")
    root = tmp_path / "p"
    root.mkdir()
    for target in (secret / ".git", other_worktree):
        (root / ".git").write_text(f"gitdir: {target}\n")
        assert gather_surface(root).external_git_dirs == ()


def test_a_submodule_gitfile_mounts_its_module_folder(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    make_repository(parent)
    module = parent / ".git/modules/lib"
    (module / "objects").mkdir(parents=True)
    (module / "HEAD").write_text("ref: refs/heads/main\n")
    (module / "config").write_text("[core]\n\tworktree = ../../../lib\n")
    (parent / "lib").mkdir()
    (parent / "lib/.git").write_text("gitdir: ../.git/modules/lib\n")
    assert gather_surface(parent / "lib").external_git_dirs == (module,)


def test_gitfile_pointing_at_an_arbitrary_folder_exposes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / ".git").write_text("gitdir: /etc\n")
    assert gather_surface(root).external_git_dirs == ()


def test_no_git_means_an_agent_made_repository_is_watched() -> None:
    protection = plan_protection(SurfaceFacts({".git": Kind.ABSENT}), commit=False)
    assert protection.git_mode is GitMode.NONE and ".git" in protection.watched


def test_small_file_reads_are_bounded_and_never_block(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_small_file(fifo) is None  # O_NONBLOCK: opening a FIFO with no writer returns at once
    (tmp_path / "link").symlink_to(tmp_path / "big")
    (tmp_path / "big").write_bytes(b"x" * 100_000)
    assert read_small_file(tmp_path / "link") is None
    assert len(read_small_file(tmp_path / "big", limit=10) or "") == 10


def test_folders_above_a_nested_pin_cannot_be_renamed_away(tmp_path: Path) -> None:
    """A pin holds its own path only: `mv scripts x && mkdir -p scripts/git-hooks` would
    put a new hooks folder where the pinned one was — unless `scripts` is a mount too."""
    root = tmp_path / "p"
    make_repository(root)
    (root / ".git/config").write_text("[core]\n\thooksPath = scripts/git-hooks\n")
    (root / "scripts/git-hooks").mkdir(parents=True)
    (root / ".gitmodules").write_text('[submodule "lib"]\n\tpath = deps/lib\n')
    (root / "deps/lib").mkdir(parents=True)
    (root / "deps/lib/.git").write_text("gitdir: ../../.git/modules/lib\n")
    protection = plan_protection(gather_surface(root), commit=False)
    assert {"scripts/git-hooks", "deps/lib/.git"} <= set(protection.pins)
    assert {"scripts", "deps", "deps/lib"} <= set(protection.writable_pins)
    assert not any(w == ".git" or w.startswith(".git/") for w in protection.writable_pins)
