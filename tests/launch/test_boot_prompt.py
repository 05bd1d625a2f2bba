"""BOOT.md, a fresh session's first prompt, is a project file an agent may have written:
only a regular file is read, bounded — never through a link, never blocking on a FIFO."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from launch.hostfacts import MAX_BOOT_PROMPT_BYTES, read_boot_prompt


def test_a_regular_boot_file_is_the_prompt_stripped_and_bounded(tmp_path: Path) -> None:
    boot = tmp_path / "BOOT.md"
    boot.write_text("\n  read the plan first  \n")
    assert read_boot_prompt(boot) == "read the plan first"
    boot.write_text("x" * (MAX_BOOT_PROMPT_BYTES + 100))
    assert read_boot_prompt(boot) == "x" * MAX_BOOT_PROMPT_BYTES
    boot.write_text(" \n")
    assert read_boot_prompt(boot) is None
    assert read_boot_prompt(tmp_path / "absent.md") is None


def test_a_link_to_a_secret_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "id_ed25519"
    secret.write_text("PRIVATE KEY")
    (tmp_path / "project").mkdir()
    (tmp_path / "project/BOOT.md").symlink_to("../id_ed25519")
    assert read_boot_prompt(tmp_path / "project/BOOT.md") is None


def _read_within(path: Path, seconds: float) -> list[str | None]:
    """read_boot_prompt(path) in a daemon thread: a blocked open() fails the test, never hangs it."""
    found: list[str | None] = []
    reader = threading.Thread(target=lambda: found.append(read_boot_prompt(path)), daemon=True)
    reader.start()
    reader.join(seconds)
    return found


def test_a_fifo_or_a_folder_does_not_block_or_fail(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "BOOT.md")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder/BOOT.md").mkdir()
    assert _read_within(tmp_path / "BOOT.md", 10) == [None]
    assert _read_within(tmp_path / "folder/BOOT.md", 10) == [None]
