"""`install.sh`'s command line, on this machine: help and refusals happen before anything else."""

from __future__ import annotations

import subprocess

import pytest

from testbed.processes import REPO


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "install.sh"), *args], capture_output=True, text=True, timeout=30)


def test_help_says_how_to_install_and_uninstall() -> None:
    result = _install("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: ./install.sh")
    for flag in ("--yes", "--no-engine", "--uninstall", "--purge"):
        assert flag in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--bogus",), "install.sh: unknown option '--bogus' (see ./install.sh --help)"),
    (("--yes", "extra"), "install.sh: unknown option 'extra' (see ./install.sh --help)"),
    (("--purge",), "install.sh: --purge goes with --uninstall (see ./install.sh --help)"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _install(*args)
    assert (result.returncode, result.stderr, result.stdout) == (2, message + "\n", "")
