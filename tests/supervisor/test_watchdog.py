"""How the watchdog waits for its parent's exit: pidfd (Linux), kqueue (macOS, the BSDs), or
polling — chosen in one place, and the test switch of `launch.portability` turns pidfds off."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.portability import PORTABLE_ONLY_VARIABLE
from supervisor.tasks.watchdog import ExitWatch, choose_exit_watch, exit_watch_here
from testbed.processes import orphaned_watcher

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize(("linux", "pidfd", "kqueue", "expected"), [
    (True, True, False, ExitWatch.PIDFD),    # Linux >= 5.3
    (True, False, False, ExitWatch.POLL),    # Python or kernel without pidfds
    (False, True, False, ExitWatch.POLL),    # Linux with the test switch: no kqueue there
    (False, False, True, ExitWatch.KQUEUE),  # macOS, the BSDs
    (True, True, True, ExitWatch.PIDFD),
    (False, True, True, ExitWatch.KQUEUE),
    (False, False, False, ExitWatch.POLL),
])
def test_choice(linux: bool, pidfd: bool, kqueue: bool, expected: ExitWatch) -> None:
    assert choose_exit_watch(linux_mechanisms=linux, has_pidfd=pidfd, has_kqueue=kqueue) is expected


def test_the_switch_turns_pidfds_off_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)
    assert exit_watch_here() is ExitWatch.PIDFD  # this Linux (CI: kernel >= 5.3, Python >= 3.9)
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")
    assert exit_watch_here() is ExitWatch.POLL


def test_with_the_switch_the_parent_is_polled_until_it_exits(tmp_path: Path) -> None:
    """A real process tree under the switch (pidfds present but not used): `sh` starts the
    watcher and exits once it watches; the watcher notices it was orphaned."""
    text = orphaned_watcher(tmp_path / "marker", extra_env={PORTABLE_ONLY_VARIABLE: "1"})
    assert text.startswith("gone "), text
    assert text.split()[1] != text.split()[3]
    assert text.split()[4] == "poll", text
