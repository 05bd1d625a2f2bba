"""The image's first-run hook (`entrypoint.d/10-first-run`): what it seeds into a Claude
Code home, and what it never touches. The real script runs here as a process against a
throw-away HOME — no engine needed; the real CLIs against it: tests/walls/
test_first_run_real_agent_docker.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

HOOK = Path(__file__).parents[2] / "image/files/rootfs/opt/llm-docker/entrypoint.d/10-first-run"
KEY = "sk-ant-api03-" + "abcdefghij" * 4 + "-XYZ_0123456789"


def run_hook(home: Path, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The hook as the entrypoint runs it: a child with the container's environment."""
    environ = {"PATH": os.environ["PATH"], "HOME": str(home), "LLM_DOCKER_TOOL": "claude", **env}
    result = subprocess.run([sys.executable, str(HOOK)], cwd=workdir, env=environ, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "Projects" / "app"
    folder.mkdir(parents=True)
    return folder


def seeded(home: Path) -> dict[str, object]:
    state: dict[str, object] = json.loads((home / ".claude.json").read_text())
    return state


def test_a_configured_key_seeds_onboarding_key_approval_and_folder_trust(home: Path, workdir: Path) -> None:
    run_hook(home, workdir, ANTHROPIC_API_KEY=f" {KEY}\n")
    assert seeded(home) == {
        "hasCompletedOnboarding": True,
        # what Claude Code records for "use this key: Yes": the trimmed key's last 20 characters
        "customApiKeyResponses": {"approved": [KEY[-20:]], "rejected": []},
        "projects": {str(workdir): {"hasTrustDialogAccepted": True}},
    }
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("placeholder", ["", "{}\n", "  {}  \n\n"])
def test_the_launchers_placeholder_counts_as_absent(home: Path, workdir: Path, placeholder: str) -> None:
    """The launcher must create the file (a bind mount's source) before Claude Code ever ran:
    `{}` (launch/state.py) or an empty file hold nothing of the user's."""
    (home / ".claude.json").write_text(placeholder)
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)
    assert seeded(home)["hasCompletedOnboarding"] is True


def test_an_auth_token_alone_skips_onboarding_without_approving_a_key(home: Path, workdir: Path) -> None:
    run_hook(home, workdir, ANTHROPIC_AUTH_TOKEN="token-for-a-gateway")
    assert seeded(home) == {"hasCompletedOnboarding": True,
                            "projects": {str(workdir): {"hasTrustDialogAccepted": True}}}


def test_without_a_credential_nothing_is_written(home: Path, workdir: Path) -> None:
    run_hook(home, workdir, ANTHROPIC_BASE_URL="http://proxy.example:8080", ANTHROPIC_API_KEY="  ")
    assert not (home / ".claude.json").exists()
    (home / ".claude.json").write_text("{}\n")
    run_hook(home, workdir)
    assert (home / ".claude.json").read_text() == "{}\n"


def test_only_a_claude_launch_is_seeded(home: Path, workdir: Path) -> None:
    run_hook(home, workdir, LLM_DOCKER_TOOL="opencode", ANTHROPIC_API_KEY=KEY)
    assert not (home / ".claude.json").exists()


@pytest.mark.parametrize("content", ['{"numStartups": 3}\n', "{}  // mine", "not json at all", "{}" + " " * 80])
def test_a_users_file_is_kept_byte_identical(home: Path, workdir: Path, content: str) -> None:
    path = home / ".claude.json"
    path.write_text(content)
    path.chmod(0o640)
    before = path.stat()
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)
    after = path.stat()
    assert path.read_text() == content
    assert (after.st_mtime_ns, after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_mtime_ns, before.st_ino,
                                                                              0o640)


def test_a_planted_symlink_is_not_followed(home: Path, workdir: Path, tmp_path: Path) -> None:
    """`~/.claude.json` as a link to a placeholder-looking file elsewhere: the link stays, the
    target is untouched; a dangling link's target is never created."""
    target = tmp_path / "elsewhere.json"
    target.write_text("{}\n")
    (home / ".claude.json").symlink_to(target)
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)
    assert target.read_text() == "{}\n"
    assert os.readlink(home / ".claude.json") == str(target)

    (home / ".claude.json").unlink()
    missing = tmp_path / "missing.json"
    (home / ".claude.json").symlink_to(missing)
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)
    assert not os.path.lexists(missing)
    assert os.readlink(home / ".claude.json") == str(missing)


def test_a_fifo_or_folder_is_left_alone_without_blocking(home: Path, workdir: Path) -> None:
    os.mkfifo(home / ".claude.json")
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)  # the subprocess timeout bounds a blocked open
    assert stat.S_ISFIFO((home / ".claude.json").lstat().st_mode)
    (home / ".claude.json").unlink()
    (home / ".claude.json").mkdir()
    run_hook(home, workdir, ANTHROPIC_API_KEY=KEY)
    assert list((home / ".claude.json").iterdir()) == []
