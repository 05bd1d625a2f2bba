"""Removing a folder an agent wrote into (a slot's run folder): however deep, never through a
link, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.remove_tree import remove_tree


def chain(root: Path, depth: int, name: str = "d") -> None:
    """`depth` nested folders under `root`, made through folder descriptors (the path may be
    longer than a path may be)."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir(name, dir_fd=folder)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = child
            if level % 100 == 0:
                os.close(os.open("file", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder))
    finally:
        os.close(folder)


def test_a_chain_deeper_than_python_recurses_is_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    chain(run, 3000)
    remove_tree(run)
    assert not run.exists()


def test_links_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep/secret").write_text("x")
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    (run / "link-to-folder").symlink_to(outside / "keep")
    (run / "sub/link-to-file").symlink_to(outside / "keep/secret")
    (run / "sub/dangling").symlink_to(tmp_path / "nowhere")
    remove_tree(run)
    assert not run.exists()
    assert (outside / "keep/secret").read_text() == "x"


def test_names_the_agent_took_and_locked_folders_do_not_stop_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for number in range(12):  # the names hoisted folders get, taken and not empty
        (run / f".llm-docker-removing-{number}/x").mkdir(parents=True)
    (run / "a/b/c").mkdir(parents=True)
    (run / "a/b/c/f").write_text("x")
    os.mkfifo(run / "a/fifo")
    (run / "a/b").chmod(0o500)
    (run / "a").chmod(0o000)
    remove_tree(run)
    assert not run.exists()


def test_anything_else_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    remove_tree(tmp_path / "absent")
    (tmp_path / "link").symlink_to(tmp_path)
    remove_tree(tmp_path / "link")
    assert sorted(os.listdir(tmp_path)) == []
